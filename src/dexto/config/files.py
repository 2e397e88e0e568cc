"""Safe writes: temp file in the same directory, fsync, rename; optional timestamped backup.

Backups are ``<name>.<UTC stamp>.bak`` beside the file; only the newest ``BACKUPS_KEPT`` of each
file are kept (older ones are deleted when a new one is made).

``file_lock(path)`` serialises read-modify-write cycles between processes: it holds an exclusive
``fcntl.flock`` on the sidecar ``<path>.lock`` (created 0600, never deleted) for the ``with`` block.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BACKUPS_KEPT", "atomic_write", "backup_file", "file_lock"]

#: How many ``.bak`` copies of one file are kept (the newest ones).
BACKUPS_KEPT = 10
_STAMP = r"\d{8}T\d{6}-\d{6}"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock for ``path`` (blocking) while the block runs.

    The lock lives on ``<path>.lock`` so the data file itself can be replaced atomically. On
    platforms without ``fcntl`` the block runs unlocked (atomic replace still prevents torn files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def backup_file(path: Path) -> Path | None:
    """Copy ``path`` to ``path.<UTC timestamp>.bak`` beside it; return the copy (None if absent).

    Older backups of the same file beyond the newest ``BACKUPS_KEPT`` are deleted.
    """
    if not path.exists():
        return None
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
    stamp += f"-{now // 1000 % 1_000_000:06d}"
    target = path.with_name(f"{path.name}.{stamp}.bak")
    shutil.copy2(path, target)
    _prune_backups(path)
    return target


def _prune_backups(path: Path) -> None:
    pattern = re.compile(re.escape(path.name) + r"\." + _STAMP + r"\.bak")
    backups = sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))
    for old in backups[:-BACKUPS_KEPT]:
        old.unlink(missing_ok=True)


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
