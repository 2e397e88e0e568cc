"""Runs the synchronous data layer from async code, and tracks database outages.

SQLite: each call runs inline on the event loop, on one connection whose busy timeout is zero, so
it never waits for a lock (a transaction takes microseconds; a thread hop would cost more than the
work); the ledger writes of concurrent requests (chat path, credits) are group-committed, one
transaction for all calls queued during a loop iteration (:mod:`dexto.gateway.sqlite_writer`, which
also runs the WAL checkpoints on a thread). When the call finds the database locked — another
process holds SQLite's write lock (``SQLITE_BUSY``) or another writer of this process holds the
in-process writer mutex — before it wrote anything, it is run again, whole, on a small thread pool
whose connections wait for the lock (:data:`db.BUSY_TIMEOUT_S`). A transaction therefore runs
entirely on the loop or entirely on one database thread, never split. A call handed to the pool
completes even if the awaiting task is cancelled: the cancellation is passed on after it returns,
so its outcome is never unknown. SQLite writers of one process queue on an in-process mutex (see
:meth:`Conn.write`).

PostgreSQL: the chat path's ledger steps run on the loop, on a pool of async connections
(:mod:`pg_ledger`, :mod:`pg_pool`): ``admit`` and ``settle`` are group-committed, the calls of both
kinds queued while one statement runs going out as the next one, and return once it is durable (its
own synchronous commit, or the pool's WAL flush barrier: :mod:`pg_batch`); ``release`` and
``progress_many`` run as one statement each.
Every other call runs on the thread pool, one connection per thread. Either way a call
completes even if the awaiting task is cancelled (the cancellation is passed on after it
returns).

An error that means the database is unreachable (see :func:`db.is_unavailable`) becomes
:class:`DatabaseUnavailable`. The first one opens an *outage*: it is logged once, with its cause;
while it lasts, at most one call per :data:`PROBE_INTERVAL_S` tries the database and the others
fail at once. The first call that succeeds closes the outage (logged once, with the count of
calls refused), so recovery needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from dexto.gateway.db import (
    Conn,
    Database,
    DatabaseUnavailable,
    describe,
    is_unavailable,
)
from dexto.gateway.logs import log_event
from dexto.gateway.pg_batch import PgBatcher, await_outcome
from dexto.gateway.pg_ledger import BATCHED
from dexto.gateway.pg_ledger import implementation as pg_implementation
from dexto.gateway.pg_pool import PgPool
from dexto.gateway.sqlite_writer import GROUPED, Locked, SqliteInline

__all__ = ["PROBE_INTERVAL_S", "DbRunner"]

P = ParamSpec("P")
T = TypeVar("T")

PROBE_INTERVAL_S = 1.0
_MESSAGE = "The gateway's database is unavailable; nothing was charged."
_FIX = "Retry shortly. Operators: check the database named in the gateway log."


class DbRunner:
    def __init__(
        self, db: Database, *, pool_size: int = 8, log: logging.Logger | None = None
    ) -> None:
        self.db = db
        self.log = log or logging.getLogger("dexto.gateway")
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, pool_size), thread_name_prefix="dexto-gw-db"
        )
        self.probe_interval_s = PROBE_INTERVAL_S
        self._down_since: float | None = None
        self._next_probe = 0.0
        self.refused = 0  # calls refused during the current outage
        self.inline = db.dialect == "sqlite"
        # SQLite: the event loop's non-waiting connection, group commit and checkpointer.
        self.sqlite = SqliteInline(db, self.log) if self.inline else None
        self.offloaded = 0  # SQLite calls that found the database locked and ran on the pool
        # PostgreSQL: the chat path's ledger steps run on async connections (see pg_ledger).
        self.batcher: PgBatcher | None = None
        self.pg = PgPool(db.url, pool_size) if db.dialect == "postgres" else None
        self._pg_calls: set[asyncio.Task[Any]] = set()

    @property
    def pg(self) -> PgPool | None:
        """The async pool (PostgreSQL); setting it gives the batcher the same pool."""
        return self._pg

    @pg.setter
    def pg(self, pool: PgPool | None) -> None:
        self._pg = pool
        self.batcher = None if pool is None else PgBatcher(pool)

    @property
    def completes_on_cancel(self) -> bool:
        """True when a cancelled :meth:`run` never leaves its call running unawaited (SQLite: a
        queued group-commit call is dropped, a running one finishes before the cancel surfaces;
        PostgreSQL: the call is shielded and awaited)."""
        return self.inline or self.pg is not None

    @property
    def outage(self) -> bool:
        return self._down_since is not None

    async def run(self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs) -> T:
        if self._down_since is not None and time.monotonic() < self._next_probe:
            self.refused += 1
            raise DatabaseUnavailable(_MESSAGE, fix=_FIX)
        try:
            if self.sqlite is not None:
                try:
                    if fn in GROUPED:
                        result = await self.sqlite.grouped(fn, *args, **kw)
                    else:
                        result = self.sqlite.call(fn, *args, **kw)
                except Locked:
                    self.offloaded += 1
                    result = await self._offload(partial(self._call, fn, *args, **kw))
            elif self.pg is not None and (impl := pg_implementation(fn, kw)) is not None:
                if impl in BATCHED and self.batcher is not None:
                    result = await await_outcome(self.batcher.submit(impl, *args, **kw))
                else:
                    result = await self._pg_run(impl, *args, **kw)
            else:
                result = await self._offload(partial(self._call, fn, *args, **kw))
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._mark_down(exc)
            raise DatabaseUnavailable(_MESSAGE, fix=_FIX) from None
        if self._down_since is not None:
            self._mark_up()
        return result

    async def _offload(self, call: Callable[[], T]) -> T:
        fut = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The call may be running on a database thread: let it finish (its transaction
            # commits or rolls back whole), then pass the cancellation on.
            while not fut.done():
                try:
                    await asyncio.wait({fut})
                except asyncio.CancelledError:
                    continue
            raise

    async def _pg_run(self, impl: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """One async statement on the pool, in a task of its own that a cancellation of the
        caller does not reach: the caller waits for it to finish, then is cancelled."""
        assert self.pg is not None
        task = asyncio.ensure_future(self.pg.run(impl, *args, **kw))
        self._pg_calls.add(task)
        task.add_done_callback(self._pg_calls.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            while not task.done():
                try:
                    await asyncio.wait({task})
                except asyncio.CancelledError:
                    continue
            raise

    async def aclose(self) -> None:
        """Wait for the async PostgreSQL calls in progress, then close their connections."""
        if self.pg is not None:
            if self.batcher is not None:
                await self.batcher.aclose()
            if self._pg_calls:
                await asyncio.wait(set(self._pg_calls))
            await self.pg.aclose()

    def _mark_down(self, exc: BaseException) -> None:
        self.refused += 1
        now = time.monotonic()
        self._next_probe = now + self.probe_interval_s
        if self._down_since is None:
            self._down_since = now
            log_event(self.log, "database unavailable", logging.ERROR, error=describe(exc))

    def _mark_up(self) -> None:
        log_event(self.log, "database available again", logging.WARNING, count=self.refused)
        self._down_since = None
        self.refused = 0

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.db.connect(create=False)
        else:
            # SQLite: a file moved or removed is an outage until it is back; a file replaced
            # under a running gateway is refused (its -wal/-shm belong to the old file).
            self.db.check_file(conn)
        before = conn.statements
        try:
            return _invoke(conn, fn, *args, **kw)
        except Exception as exc:
            if not _is_broken(conn):
                raise
            self._drop(conn)
            if conn.statements != before or not is_unavailable(exc):
                raise
        # The pooled connection was dead before this call ran a statement (e.g. the server
        # closed it while idle): nothing reached the database, so run once on a fresh one.
        conn = self._local.conn = self.db.connect(create=False)
        try:
            return _invoke(conn, fn, *args, **kw)
        except Exception:
            if _is_broken(conn):
                self._drop(conn)
            raise

    def _drop(self, conn: Conn) -> None:
        self._local.conn = None
        self.db.forget(conn)

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            self.pg.close_now()
        self._executor.shutdown(wait=True)
        self.db.close_all()


def _invoke(conn: Conn, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """``fn(conn, …)``, then close any transaction it left open, so a pooled PostgreSQL
    connection never waits idle in transaction between calls. A failing rollback is
    suppressed: on the error path the call's own exception is the one raised; on the success
    path the call's result stands (what it committed is committed; what the rollback was to
    discard is discarded with the connection); the next call finds the connection broken
    before any of its statements ran and runs on a fresh one (:meth:`DbRunner._call`)."""
    try:
        result = fn(conn, *args, **kw)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.end_transaction()
        raise
    with contextlib.suppress(Exception):
        conn.end_transaction()
    return result


def _is_broken(conn: Conn) -> bool:
    if conn.dialect == "sqlite":
        return False
    if getattr(conn.raw, "closed", False):
        return True
    try:
        import psycopg

        return bool(conn.raw.info.transaction_status == psycopg.pq.TransactionStatus.UNKNOWN)
    except Exception:  # noqa: BLE001
        return True
