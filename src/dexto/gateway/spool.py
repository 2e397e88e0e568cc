"""The settlement spool: deferred settlements on local disk, so a worker's death loses none.

A settlement that could not reach the database (see :mod:`dexto.gateway.settlement`) is
appended, before the client gets the end of its answer, as one JSON line to this worker's spool
file and fsynced: ``{"rid", "account", "cost", "kw": {ledger.settle keyword arguments}}``. When it
lands, a ``{"done": rid}`` line is appended; once nothing is outstanding the file is truncated.

A stream whose delivery could not be recorded on its hold (the database away at its first
output) gets, before its first bytes are relayed, a delivery line:
``{"rid", "account", "delivered": {"hold", "model", "key_id", "prompt_tokens", "generation_id",
"completion_tokens"}}``, marked done the same way once the request settled. A replayed delivery
line is settled like an expired delivered hold (see :func:`dexto.gateway.sweeper.replay_spools`).
A settlement line of a request wins over its delivery line, in whatever order they were written.

Each worker process writes one file, ``settle-<pid>-<random>.jsonl`` (0600, in a 0700
directory), held with an exclusive ``fcntl.flock`` for the life of the process. A file whose
lock is free belongs to a dead worker: :func:`claim_orphans` (run by every worker's sweeper, at
start and every sweep) takes its lock, settles what it holds that is not marked done, and
removes it once all landed. Settling is idempotent per request id, so a replayed settlement that
already landed changes nothing; one whose hold was released or swept meanwhile is still charged.

A worker creates its file as ``.settle-<pid>-<random>.tmp``, locks it and renames it, while
holding a shared ``flock`` on the directory's ``.create.lock``. A worker killed before the rename
leaves the ``.tmp`` file behind: :func:`claim_orphans` takes that lock exclusively (skipping the
clean-up for this round when a worker is creating its file) and, for each ``.tmp`` file whose
own lock is free, renames it to its ``.jsonl`` name when it holds records not marked done (then
replayed like any other file), else removes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dexto.gateway.db import make_private_dirs

__all__ = ["Spool", "claim_orphans", "clean_stale_tmp", "read_pending"]

_SUFFIX = ".jsonl"
_TMP_PREFIX, _TMP_SUFFIX = ".settle-", ".tmp"
_CREATE_LOCK = ".create.lock"
Settler = Callable[[str, str, int, dict[str, Any]], Awaitable[object]]
DeliveredSettler = Callable[[dict[str, Any]], Awaitable[object]]


def _fsync_dir(directory: Path) -> None:
    """Make a new name in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_create_lock(directory: Path) -> int:
    return os.open(directory / _CREATE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Spool:
    """This worker's spool file, created (and locked) on the first deferred settlement."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path: Path | None = None
        self._fd: int | None = None
        self._open: set[str] = set()  # request ids spooled and not yet marked done
        self._lock = threading.Lock()
        # A failed write could not be cut back: the file may end inside a line, so the next
        # line starts with a newline of its own (read_pending skips the fragment).
        self._torn = False

    def _ensure(self) -> int:
        if self._fd is not None:
            return self._fd
        make_private_dirs(self.directory)
        name = f"settle-{os.getpid()}-{os.urandom(6).hex()}"
        tmp = self.directory / f".{name}{_TMP_SUFFIX}"
        # Shared: a claimer cleaning stale .tmp files (exclusive) never takes this one.
        guard = _open_create_lock(self.directory)
        try:
            fcntl.flock(guard, fcntl.LOCK_SH)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Visible to claimers only once locked (they list *.jsonl files).
                path = self.directory / (name + _SUFFIX)
                os.rename(tmp, path)
                _fsync_dir(self.directory)
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(guard)
        self._fd, self.path = fd, path
        return fd

    def append(self, request_id: str, account_id: str, cost: int, kw: dict[str, Any]) -> None:
        """Write one settlement and fsync it (blocking: call it off the event loop)."""
        self._write(request_id, {"rid": request_id, "account": account_id, "cost": cost, "kw": kw})

    def append_delivered(self, request_id: str, account_id: str, hold: dict[str, Any]) -> None:
        """Write that a stream delivered output its hold does not record, with what settling it
        needs (``hold``: see the module docstring), and fsync it (blocking)."""
        self._write(request_id, {"rid": request_id, "account": account_id, "delivered": hold})

    def _write(self, request_id: str, doc: dict[str, Any]) -> None:
        line = json.dumps(doc, separators=(",", ":"))
        with self._lock:
            fd = self._ensure()
            self._append_line(fd, line.encode() + b"\n")
            os.fsync(fd)
            self._open.add(request_id)

    def _append_line(self, fd: int, line: bytes) -> None:
        """Append ``line`` whole or not at all: a write that fails part-way (disk full, file
        size limit) is cut back to where it started, so the next line is not glued to a
        fragment and lost with it."""
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, b"\n" + line if self._torn else line)
        except BaseException:
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._torn = True
            raise
        self._torn = False

    def done(self, request_id: str) -> None:
        """The settlement landed: mark it (no fsync: a replay of it is a no-op); truncate the
        file when nothing is outstanding."""
        with self._lock:
            if self._fd is None or request_id not in self._open:
                return
            self._open.discard(request_id)
            if not self._open:
                os.ftruncate(self._fd, 0)
                self._torn = False
            else:
                self._append_line(self._fd, json.dumps({"done": request_id}).encode() + b"\n")

    @property
    def outstanding(self) -> int:
        return len(self._open)

    def close(self) -> None:
        """Release the file: empty, it is removed; else it stays for another worker."""
        with self._lock:
            if self._fd is None:
                return
            if not self._open and self.path is not None:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _is_tmp(name: str) -> bool:
    return name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)


def clean_stale_tmp(directory: str | Path) -> tuple[int, int]:
    """Deal with the ``.tmp`` files of workers killed while creating their spool file: (renamed
    to ``.jsonl`` because they hold records not marked done, removed). Nothing is done while a
    worker is creating its file (the ``.create.lock`` is taken exclusively, without waiting),
    and a ``.tmp`` file whose own lock is held is left."""
    directory = Path(directory)
    recovered = removed = 0
    try:
        guard = _open_create_lock(directory)
    except FileNotFoundError:
        return 0, 0
    try:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0, 0  # a worker is creating its file: next round
        for name in sorted(p for p in os.listdir(directory) if _is_tmp(p)):
            tmp = directory / name
            try:
                fd = os.open(tmp, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # still locked by a live process
                with os.fdopen(os.dup(fd), "rb") as f:
                    data = f.read()
                if read_pending(data):
                    os.rename(tmp, directory / (name[1 : -len(_TMP_SUFFIX)] + _SUFFIX))
                    recovered += 1
                else:
                    tmp.unlink()
                    removed += 1
            finally:
                os.close(fd)
        if recovered or removed:
            _fsync_dir(directory)
    finally:
        os.close(guard)
    return recovered, removed


def read_pending(data: bytes) -> list[dict[str, Any]]:
    """The records of a spool file's content not marked done (a torn last line skipped): per
    request its last settlement line, else its last delivery line."""
    records: dict[str, dict[str, Any]] = {}
    for line in data.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if "done" in doc:
            records.pop(str(doc["done"]), None)
        elif not isinstance(doc.get("rid"), str):
            continue
        elif isinstance(doc.get("kw"), dict):
            records[doc["rid"]] = doc
        elif isinstance(doc.get("delivered"), dict):
            if "kw" not in records.get(doc["rid"], {}):
                records[doc["rid"]] = doc
    return list(records.values())


async def claim_orphans(
    directory: str | Path,
    settle: Settler,
    *,
    on_error: Callable[[Exception], None],
    settle_delivered: DeliveredSettler | None = None,
) -> int:
    """Replay the spool files of dead workers (lock free) in ``directory``; returns how many
    records were replayed: settlements by ``settle``, delivery lines by ``settle_delivered``
    (without it they are left). A file is removed once all of its records landed; else it is
    left, marked with what landed, for the next round. Stale ``.tmp`` files are dealt with
    first (:func:`clean_stale_tmp`); a failure there goes to ``on_error``."""
    directory = Path(directory)
    try:
        if any(_is_tmp(p) for p in os.listdir(directory)):
            try:
                clean_stale_tmp(directory)
            except OSError as exc:  # the .jsonl files are replayed all the same
                on_error(exc)
        names = sorted(p for p in os.listdir(directory) if p.endswith(_SUFFIX))
    except FileNotFoundError:
        return 0
    replayed = 0
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its worker is alive (or another worker is replaying it)
            if os.fstat(fd).st_nlink == 0:
                continue  # replayed and removed by another worker meanwhile
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            pending = read_pending(data)
            failed = False
            for rec in pending:
                try:
                    if "kw" in rec:
                        await settle(rec["rid"], str(rec["account"]), int(rec["cost"]), rec["kw"])
                    elif settle_delivered is not None:
                        await settle_delivered(rec)
                    else:
                        failed = True
                        continue
                except Exception as exc:  # noqa: BLE001 - left for the next round
                    on_error(exc)
                    failed = True
                    continue
                replayed += 1
                _write_all(fd, json.dumps({"done": rec["rid"]}).encode() + b"\n")
            if not failed:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return replayed
