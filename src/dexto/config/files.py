"""Safe writes: temp file in the same directory, fsync, rename; optional timestamped backup.

Backups are ``<name>.<UTC stamp>.bak`` beside the file; only the newest ``BACKUPS_KEPT`` of each
file are kept (older ones are deleted when a new one is made).

``file_lock(path)`` serialises read-modify-write cycles between processes: it holds an exclusive
``fcntl.flock`` on the sidecar ``<path>.lock`` (created 0600, never deleted) for the ``with`` block.

``path_error(path, exc)`` turns an OSError met on a file under ``$DEXTO_HOME`` into a ConfigError
naming what is in the way (a file where a directory belongs, a directory where a file belongs, a
directory that cannot be created) and what to do about it; ``file_lock``, ``atomic_write`` and
``backup_file`` raise it instead of the OSError.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dexto.config.paths import dexto_home
from dexto.errors import ConfigError

__all__ = ["BACKUPS_KEPT", "atomic_write", "backup_file", "file_lock", "path_error"]

#: How many ``.bak`` copies of one file are kept (the newest ones).
BACKUPS_KEPT = 10
_STAMP = r"\d{8}T\d{6}-\d{6}"
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _named(path: Path) -> str:
    """``path``, marked as the dexto home when it is ``$DEXTO_HOME`` (or ``~/.dexto``)."""
    return f"the dexto home {path} (DEXTO_HOME)" if path == dexto_home() else str(path)


def _file_in_the_way(path: Path) -> Path | None:
    """The first ancestor of ``path`` that exists and is not a directory, if any."""
    for parent in reversed(path.parents):
        if os.path.lexists(parent) and not parent.is_dir():
            return parent
    return None


def path_error(path: Path, exc: OSError, *, reading: bool = False) -> ConfigError:
    """A ConfigError for ``exc``, met while reading (``reading``) or writing ``path``."""
    home = dexto_home()
    blocker = _file_in_the_way(path)
    if blocker is not None:
        fix = f"move the file aside so a directory can be made there: mv {blocker} {blocker}.moved"
        if blocker == home:
            fix = f"point DEXTO_HOME at a directory, or {fix}"
        return ConfigError(f"{_named(blocker)} is a file, not a directory", file=str(path), fix=fix)
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return ConfigError(
            "is a directory, not a file",
            file=str(path),
            fix=f"move the directory aside (dexto then makes a new file): mv {path} {path}.moved",
        )
    failed = Path(os.fsdecode(exc.filename)) if exc.filename is not None else path
    cause = exc.strerror or type(exc).__name__
    if exc.errno in _DENIED:
        if not home.is_dir() and (failed == home or failed in home.parents):
            return ConfigError(
                f"cannot create {_named(home)}: {cause}",
                file=str(path),
                fix="point DEXTO_HOME at a directory you can write to (unset, it is ~/.dexto)",
            )
        return ConfigError(
            f"cannot {'read' if reading else 'write'} {failed}: {cause}",
            file=str(path),
            fix=f"give this user access to {failed}, or point DEXTO_HOME at a directory "
            "you can write to",
        )
    return ConfigError(
        f"cannot {'read' if reading else 'write'} {failed}: {cause}",
        file=str(path),
        fix=f"check that {path.parent} is a directory with space left and that this user can "
        "write to it",
    )


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock for ``path`` (blocking) while the block runs.

    The lock lives on ``<path>.lock`` so the data file itself can be replaced atomically. On
    platforms without ``fcntl`` the block runs unlocked (atomic replace still prevents torn files).
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise path_error(lock_path, exc) from None
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
    """Copy ``path`` to ``path.<UTC timestamp>.bak`` beside it, readable by its owner only (a
    backup may keep a secret the file no longer has); return the copy (None if absent).

    Older backups of the same file beyond the newest ``BACKUPS_KEPT`` are deleted.
    """
    try:
        return _backup_file(path)
    except OSError as exc:
        raise path_error(path, exc) from None


def _backup_file(path: Path) -> Path | None:
    if not path.exists():
        return None
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
    stamp += f"-{now // 1000 % 1_000_000:06d}"
    target = path.with_name(f"{path.name}.{stamp}.bak")
    shutil.copy2(path, target)
    os.chmod(target, stat.S_IMODE(os.stat(target).st_mode) & 0o600)  # owner only, always
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
    if backup:
        backup_file(path)
    try:
        _atomic_write(path, data, mode)
    except OSError as exc:
        raise path_error(path, exc) from None


def _atomic_write(path: Path, data: str | bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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
