"""SQLite on the event loop: group commit of the chat path's writes, checkpoints on a thread.

:class:`SqliteInline` owns the loop's connection (busy timeout zero). A call runs *solo* — inline,
in its own transaction — or, if its function is in :data:`GROUPED` (the ledger writes of the chat
path, and credits), it is queued. When the queue goes from empty to non-empty, one writer step is
scheduled with ``loop.call_soon``; it runs every call queued by then in **one** transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``). Inside it each ``Conn.write()`` block is a ``SAVEPOINT``, so a
call that raises rolls back only its own writes and gets its own exception; the others commit. A
step with a single call runs it solo (no savepoint), so a lone request pays nothing extra beyond
one loop iteration; and after :data:`SOLO_STEPS` such steps in a row, calls run at once (solo)
except one in :data:`PROBE_EVERY`, which is queued to notice concurrent writers again.

Outcomes a caller can get besides its result or its own exception:

* :class:`Locked` — the database was locked (another process holds SQLite's write lock, or a
  writer of this process holds the in-process mutex) before anything was written: the caller
  runs the call again, whole, on the database threads (see :mod:`dexto.gateway.runner`).
* the call is run again solo — the batch transaction was lost (its ``COMMIT`` failed, or SQLite
  rolled it back after another call's error) so nothing of this call landed.

A caller cancelled while its call is queued drops it (it never runs); a caller cancelled after
the step ran it gets the cancellation, and the call has committed or rolled back whole.

:class:`Checkpointer` moves WAL checkpoints off the request path: the loop's connection has
``wal_autocheckpoint=0``; a thread with its own connection runs ``wal_checkpoint(PASSIVE)``
every :attr:`Checkpointer.every_commits` commits or :attr:`Checkpointer.interval_s` seconds
(when something was committed). Writes committed while it ran are not copied back, so the WAL
does not restart: it is let grow until it holds :attr:`Checkpointer.restart_wal_bytes`; from
then on such a checkpoint is finished with a second PASSIVE one while the loop holds its write
steps, so that the next write transaction restarts the WAL (see :meth:`Checkpointer._finish`).
Once the database has been idle for :attr:`Checkpointer.idle_s` the WAL file is emptied: a
PASSIVE checkpoint copies it back (no lock), then, if nothing was committed meanwhile,
``wal_checkpoint(TRUNCATE)`` cuts the file while the loop holds its write steps (see
:meth:`Checkpointer._truncate`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dexto.gateway import ledger
from dexto.gateway.db import Conn, Database, WriteLockBusy, describe
from dexto.gateway.logs import log_event

__all__ = ["GROUPED", "Checkpointer", "Locked", "SqliteInline"]

T = TypeVar("T")

# Functions whose calls are group-committed: each writes only inside ``conn.write()`` blocks.
GROUPED: frozenset[Callable[..., Any]] = frozenset(
    {
        ledger.admit,
        ledger.settle,
        ledger.release,
        ledger.progress,
        ledger.progress_many,
        ledger.renew_many,
        ledger.credit,
    }
)


# A lone writer does not pay for queueing: after this many write steps in a row that each had a
# single call, calls run at once (as solo calls) until a queued one finds company; one call in
# PROBE_EVERY is still queued, to notice concurrent writers again.
SOLO_STEPS = 16
PROBE_EVERY = 16


class Locked(Exception):
    """The call found the database locked before it wrote anything."""


class _Rerun(Exception):
    """The batch transaction was lost before it committed: run the call again, solo."""


class _Call:
    __slots__ = ("args", "fn", "fut", "kw")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], fut: Any
    ) -> None:
        self.fn, self.args, self.kw, self.fut = fn, args, kw, fut


class SqliteInline:
    """The event loop's SQLite connection, its group-commit writer and its checkpointer."""

    def __init__(self, db: Database, log: logging.Logger, *, checkpoint: bool = True) -> None:
        self.db = db
        self.log = log
        self._conn: Conn | None = None
        self._queue: list[_Call] = []
        self.checkpointer = Checkpointer(db, log) if checkpoint else None
        if self.checkpointer is not None:
            self.checkpointer.hold, self.checkpointer.release = self._hold, self._release
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held = False  # the checkpointer asked for no write step to start (see _hold)
        self.direct = False  # grouped calls run at once (see SOLO_STEPS)
        self._solo_steps = 0
        self._probe = PROBE_EVERY
        self.batches = 0  # transactions that committed more than one call
        self.batched_calls = 0  # calls committed in those transactions

    # -- connection -----------------------------------------------------------------------

    def _connection(self) -> Conn:
        conn = self._conn
        if conn is None:
            conn = self.db.connect(create=False, busy_timeout_s=0)
            if self.checkpointer is not None:
                conn.raw.execute("PRAGMA wal_autocheckpoint=0")
                self.checkpointer.start()
            self._conn = conn
        else:
            self.db.check_file(conn)
        return conn

    @property
    def conn(self) -> Conn | None:
        return self._conn

    # -- solo calls -----------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run ``fn`` inline in its own transaction(s); :class:`Locked` if it found the lock taken
        before writing anything."""
        conn = self._connection()
        commits, changes = conn.commits, conn.raw.total_changes
        try:
            return fn(conn, *args, **kw)
        except WriteLockBusy:
            raise Locked from None
        except sqlite3.OperationalError as exc:
            # Safe to run again only if this call wrote nothing (its transaction rolled back).
            if _is_busy(exc) and conn.commits == commits and conn.raw.total_changes == changes:
                raise Locked from None
            raise
        finally:
            if conn.commits != commits:
                self._committed()

    # -- grouped calls --------------------------------------------------------------------

    async def grouped(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Queue ``fn`` for the next writer step and wait for its outcome."""
        if self.direct and not self._queue and not self._held:
            self._probe -= 1
            if self._probe > 0:
                return self.call(fn, *args, **kw)
            self._probe = PROBE_EVERY
        loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Call(fn, args, kw, fut))
        if len(self._queue) == 1 and not self._held:
            loop.call_soon(self._step)
        try:
            result: T = await fut
        except _Rerun:
            return self.call(fn, *args, **kw)
        return result

    def _step(self) -> None:
        if self._held:
            return  # _end_hold schedules the step
        calls = [c for c in self._queue if not c.fut.done()]  # cancelled callers drop out
        self._queue = []
        if len(calls) > 1:
            self._solo_steps, self.direct = 0, False
        elif calls:
            self._solo_steps += 1
            self.direct = self._solo_steps >= SOLO_STEPS
        try:
            if len(calls) == 1:
                self._solo(calls[0])
            elif calls:
                self._batch(calls)
        finally:
            for c in calls:
                if not c.fut.done():
                    c.fut.set_exception(_Rerun())

    def _solo(self, c: _Call) -> None:
        try:
            result = self.call(c.fn, *c.args, **c.kw)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            c.fut.set_exception(exc)
        else:
            c.fut.set_result(result)

    def _batch(self, calls: list[_Call]) -> None:
        try:
            conn = self._connection()
            conn.begin_batch()
        except (WriteLockBusy, sqlite3.OperationalError) as exc:
            outcome: Exception = (
                Locked() if isinstance(exc, WriteLockBusy) or _is_busy(exc) else exc
            )
            for c in calls:
                c.fut.set_exception(outcome)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the file is gone: every caller's outage
            for c in calls:
                c.fut.set_exception(exc)
            return
        outcomes: list[tuple[_Call, bool, Any]] = []
        try:
            for c in calls:
                try:
                    outcomes.append((c, True, c.fn(conn, *c.args, **c.kw)))
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    if not conn.raw.in_transaction:
                        # SQLite rolled the whole transaction back: this call gets its error,
                        # the others (nothing of theirs landed) run again solo.
                        c.fut.set_exception(exc)
                        return
                    outcomes.append((c, False, exc))
            try:
                conn.raw.commit()
            except Exception as exc:  # noqa: BLE001 - nothing landed: the callers run again
                log_event(self.log, "sqlite group commit failed", 30, error=describe(exc))
                return
            conn.commits += 1
        finally:
            self._end_batch(conn)
        self.batches += 1
        self.batched_calls += sum(ok for _, ok, _ in outcomes)
        self._committed()
        for c, ok, value in outcomes:
            if ok:
                c.fut.set_result(value)
            else:
                c.fut.set_exception(value)

    # -- checkpoint hold (called from the checkpointer thread) ---------------------------------

    def _hold(self, ready: threading.Event) -> bool:
        """Ask the loop to start no write step until :meth:`_release`; ``ready`` is set once it
        has stopped. False if there is no running loop to ask."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(self._start_hold, ready)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _release(self) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._end_hold)
            except RuntimeError:
                pass

    def _start_hold(self, ready: threading.Event) -> None:
        self._held = True
        ready.set()

    def _end_hold(self) -> None:
        self._held = False
        if self._queue and self._loop is not None:
            self._loop.call_soon(self._step)

    def _end_batch(self, conn: Conn) -> None:
        try:
            conn.end_batch()
        except Exception as exc:  # noqa: BLE001 - the rollback failed: open a new connection
            log_event(self.log, "sqlite rollback failed", 30, error=describe(exc))
            self._conn = None
            self.db.forget(conn)

    def _committed(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.note_commit()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self._conn = None


def _is_busy(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_BUSY")


class Checkpointer:
    """A thread that checkpoints the WAL so that no request waits for it (see module doc)."""

    every_commits = 150
    interval_s = 5.0
    idle_s = 5.0
    # A hold stops the loop's writes for a checkpoint and its fsyncs: only once per this much WAL.
    restart_wal_bytes = 64 * 1024 * 1024

    def __init__(self, db: Database, log: logging.Logger) -> None:
        self.db = db
        self.log = log
        self.commits = 0  # written by the loop only
        self.checkpoints = 0  # PASSIVE checkpoints run
        self.truncates = 0  # TRUNCATE checkpoints that completed
        self._wake = threading.Event()
        self._ready = threading.Event()
        # Set by SqliteInline: hold / release the loop's write steps (see _finish).
        self.hold: Callable[[threading.Event], bool] | None = None
        self.release: Callable[[], None] | None = None
        self.holds = 0  # checkpoints (finishing or TRUNCATE) run while the loop held its writes
        self.rounds = 0  # wake-ups that ended without an error
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failed = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._main, name="dexto-gw-checkpoint", daemon=True
            )
            self._thread.start()

    def note_commit(self) -> None:
        self.commits += 1
        if self.commits % self.every_commits == 0:
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._ready.set()  # a hold the loop cannot grant now (it is closing us) is not awaited
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _main(self) -> None:
        conn: Conn | None = None
        seen = 0
        last_commit = time.monotonic()
        truncated = True
        frame_bytes = 4096 + 24  # a WAL frame: a page and its 24-byte header
        try:
            while True:
                self._wake.wait(self.interval_s)
                self._wake.clear()
                if self._stopping:
                    return
                now = time.monotonic()
                commits = self.commits
                try:
                    if conn is None:
                        conn = self.db.connect(create=False, busy_timeout_s=0)
                        frame_bytes = conn.raw.execute("PRAGMA page_size").fetchone()[0] + 24
                    if commits != seen:
                        seen, last_commit, truncated = commits, now, False
                        copied, frames = self._passive(conn)
                        # Writes committed meanwhile were not copied back, so the WAL does not
                        # restart: let it grow up to restart_wal_bytes, then finish under a hold.
                        if frames * frame_bytes >= self.restart_wal_bytes and (
                            not copied or self.commits != commits
                        ):
                            self._finish(conn)
                    elif not truncated and now - last_commit >= self.idle_s:
                        truncated = self._truncate(conn)
                    self._failed = False
                    self.rounds += 1
                except Exception as exc:  # noqa: BLE001 - tried again on the next round
                    if not self._failed:
                        log_event(self.log, "wal checkpoint failed", 30, error=describe(exc))
                    self._failed = True
                    if conn is not None:
                        self.db.forget(conn)
                        conn = None
        finally:
            if conn is not None:
                self.db.forget(conn)

    def _finish(self, conn: Conn) -> None:
        """Writes committed while the PASSIVE checkpoint ran, so the WAL is not wholly copied back
        and SQLite cannot start it again from the beginning: it would grow without bound. Copy
        the rest (a few frames) while the loop holds its write steps; the next writer then
        restarts the WAL."""
        self._under_hold(lambda: self._passive(conn)[0])

    def _under_hold(self, fn: Callable[[], bool]) -> bool:
        """Run ``fn`` while the loop holds its write steps; False if the hold was not granted
        (no running loop, stopping, or not granted within a second)."""
        if self.hold is None or self.release is None or self._stopping:
            return False
        ready = self._ready = threading.Event()
        if not self.hold(ready):
            return False
        try:
            if not ready.wait(1.0) or self._stopping:
                return False
            done = fn()
            self.holds += done
            return done
        finally:
            self.release()

    def _passive(self, conn: Conn) -> tuple[bool, int]:
        """One PASSIVE checkpoint: (whether it copied the whole WAL back, frames in the WAL)."""
        row = conn.raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if row is None:
            return False, 0
        return row[0] == 0 and row[1] == row[2], max(0, row[1])

    def _truncate(self, conn: Conn) -> bool:
        """Empty the WAL file; True if done (not when a writer or reader was active).

        The copying back and its ``fsync``s run first, as a PASSIVE checkpoint, which takes no
        lock. Only if that copied the whole WAL and nothing was committed meanwhile does the
        ``wal_checkpoint(TRUNCATE)`` run, under SQLite's write lock, while the loop holds its
        write steps (a write arriving then is queued, not handed to the database threads); it
        has nothing left to copy and only cuts the file to zero bytes, whose pages were first
        dropped from the page cache (``POSIX_FADV_DONTNEED``: they are clean once copied back,
        and a truncate that frees no cached pages takes about half the time)."""
        commits = self.commits
        copied, frames = self._passive(conn)
        if not copied or self.commits != commits:
            return False
        if frames:
            self._drop_wal_cache()

        def truncate() -> bool:
            row = conn.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return row is not None and row[0] == 0

        if self.hold is None:
            done = truncate()
        else:
            done = self._under_hold(truncate)
        self.truncates += done
        return done

    def _drop_wal_cache(self) -> None:
        if self.db.path is None or not hasattr(os, "posix_fadvise"):
            return
        try:
            fd = os.open(f"{self.db.path}-wal", os.O_RDONLY)
        except OSError:
            return
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
