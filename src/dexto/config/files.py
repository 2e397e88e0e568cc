"""Safe writes: temp file in the same directory, fsync, rename; optional timestamped backup."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write", "backup_file"]


def backup_file(path: Path) -> Path | None:
    """Copy ``path`` to ``path.<UTC timestamp>.bak`` beside it; return the copy (None if absent)."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
    target = path.with_name(f"{path.name}.{stamp}.bak")
    shutil.copy2(path, target)
    return target


def atomic_write(
    path: Path, data: str | bytes, *, mode: int | None = None, backup: bool = False
) -> None:
    """Replace ``path`` with ``data`` atomically; ``mode`` is applied before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if backup:
        backup_file(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
