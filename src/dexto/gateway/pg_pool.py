"""A small pool of psycopg async connections (autocommit) for one worker's event loop.

Each connection runs one statement at a time, through one cursor kept with it; in autocommit
mode that statement is its own transaction, so a call is one round trip, commit included, and
no thread is involved. At most ``size`` connections are open; callers beyond that wait for one
to come back.

Before a pooled connection is used it is checked without a round trip: an idle connection
must have nothing to read (a server that terminated the backend sends an error and closes the
socket). A connection that fails the check is closed and another one taken or opened, so a
connection killed while idle never fails a call, and a call is never sent twice. A connection
that breaks during a call is closed; the error is the call's (see :func:`db.is_unavailable`).

The first connection's ``synchronous_commit`` is read once (:attr:`PgPool.commit_mode`): the
value a statement sets back to commit synchronously (see :mod:`pg_batch`).

The flush barrier's statement is ``pg_logical_emit_message``; when the server refuses it for
want of privilege, the pool logs that once and from then on uses :data:`FLUSH_FALLBACK`, which
needs only the ``TEMP`` privilege (``PUBLIC`` has it by default).
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from dexto.gateway.db import DatabaseUnavailable, pg_connect_failed
from dexto.gateway.logs import get_logger, log_event

__all__ = ["PgPool"]

P = ParamSpec("P")
T = TypeVar("T")

CONNECT_TIMEOUT_S = 10

# Both statements run in their own transaction, assign it a transaction id and write WAL, so
# its commit record is flushed (and, with synchronous standbys, replicated) before the commit
# returns under the server's synchronous_commit. A transaction id alone is not enough: a
# transaction that wrote no WAL commits without waiting for the flush.
FLUSH = "SELECT pg_logical_emit_message(true, 'dexto', '')"
# Creates a temporary table, dropped at commit: rows inserted into the (WAL-logged) catalogs.
FLUSH_FALLBACK = "CREATE TEMP TABLE dexto_flush () ON COMMIT DROP"


class PgPool:
    flush_sql = FLUSH  # the barrier's first choice

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = max(1, size)
        self._idle: list[Any] = []  # psycopg.AsyncCursor of each idle connection, LIFO
        self._slots: asyncio.Semaphore | None = None  # created on the loop that uses it
        self._open: set[Any] = set()  # cursors of every open connection
        self.opened = 0  # connections opened so far (replacements included)
        self.closed = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.flushes = 0  # flush transactions run (see barrier)
        self.flush_fallback = False  # FLUSH_FALLBACK in use (flush_sql was refused)
        self.commit_mode: str | None = None  # the sessions' synchronous_commit (see _connect)
        self._log = get_logger()

    async def run(
        self, fn: Callable[Concatenate[Any, P], Awaitable[T]], *args: P.args, **kw: P.kwargs
    ) -> T:
        """``await fn(cursor, *args, **kw)`` with the cursor of a pooled connection."""
        if self.closed:
            raise DatabaseUnavailable("the database pool is closed")
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self.size)
        async with slots:
            cur = await self._take()
            try:
                result = await fn(cur, *args, **kw)
            except BaseException:
                if _usable(cur):
                    self._idle.append(cur)
                else:
                    await self._discard(cur)
                raise
            self._idle.append(cur)
            return result

    async def barrier(self) -> None:
        """Return once every transaction this worker committed before the call is durable.

        ``admit`` and ``settle`` commit with ``synchronous_commit = off`` (their row lock is
        released without waiting for the WAL flush); their callers then wait here. One flush
        transaction at a time serves every caller that arrived before it started: it writes a
        transactional WAL record (:data:`FLUSH`, or :data:`FLUSH_FALLBACK` once the server has
        refused :attr:`flush_sql` for want of privilege) and commits under the server's
        ``synchronous_commit``, and its flush covers every commit record inserted before its
        own, whichever backend inserted it.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._flush_waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_rounds())
        await waiter

    def flush_idle(self) -> bool:
        """No flush transaction running or awaited: a :meth:`barrier` now would run one of its
        own."""
        return not self._flush_waiters and (self._flusher is None or self._flusher.done())

    async def _flush_rounds(self) -> None:
        while self._flush_waiters:
            batch, self._flush_waiters = self._flush_waiters, []
            try:
                await self.run(self._flush)
            except BaseException as exc:
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(_copy(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                self.flushes += 1
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _flush(self, cur: Any) -> None:
        import psycopg

        if self.flush_fallback:
            await cur.execute(FLUSH_FALLBACK)
            return
        try:
            await cur.execute(self.flush_sql)
        except psycopg.errors.InsufficientPrivilege:
            # the refused statement's transaction is over (autocommit): the connection is idle
            self.flush_fallback = True
            log_event(
                self._log,
                "flush barrier: pg_logical_emit_message not permitted, using a temporary table",
                logging.WARNING,
            )
            await cur.execute(FLUSH_FALLBACK)

    async def _take(self) -> Any:
        while self._idle:
            cur = self._idle.pop()
            if _usable(cur) and not _readable(cur):
                return cur
            await self._discard(cur)
        return await self._connect()

    async def _connect(self) -> Any:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.OperationalError as exc:
            raise pg_connect_failed(self.url, exc) from None
        self.opened += 1
        cur = conn.cursor()
        self._open.add(cur)
        if self.commit_mode is None:  # once per pool: the URL fixes it for every session
            try:
                await cur.execute("SHOW synchronous_commit")
                row = await cur.fetchone()
            except BaseException:
                await self._discard(cur)
                raise
            self.commit_mode = str(row[0]) if row else None
        return cur

    async def _discard(self, cur: Any) -> None:
        self._open.discard(cur)
        try:
            await cur.connection.close()
        except Exception:  # noqa: BLE001 - best effort on a broken connection
            pass

    async def aclose(self) -> None:
        """Close every connection; calls in progress keep theirs until they return (the runner
        waits for them first)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for cur in idle:
            await self._discard(cur)

    def close_now(self) -> None:
        """Close every connection without awaiting (shutdown outside the event loop)."""
        self.closed = True
        self._idle = []
        for cur in list(self._open):
            self._open.discard(cur)
            try:
                cur.connection.pgconn.finish()
            except Exception:  # noqa: BLE001
                pass


def _copy(exc: BaseException) -> BaseException:
    """An exception of the same kind for each waiter (one instance raised in many tasks would
    chain their tracebacks)."""
    from dexto.gateway.db import is_unavailable

    if is_unavailable(exc):
        return DatabaseUnavailable(f"the WAL flush failed: {type(exc).__name__}")
    if isinstance(exc, asyncio.CancelledError):
        return asyncio.CancelledError()
    return RuntimeError(f"the WAL flush failed: {type(exc).__name__}")


def _usable(cur: Any) -> bool:
    """Open, not broken, and idle (outside a transaction, no result pending)."""
    from psycopg import pq

    conn = cur.connection
    if conn.closed or conn.broken:
        return False
    return bool(conn.pgconn.transaction_status == pq.TransactionStatus.IDLE)


def _readable(cur: Any) -> bool:
    """An idle connection with something to read: the server closed it or sent an error."""
    try:
        poller = select.poll()  # poll, not select: descriptors above 1024 are common here
        poller.register(cur.connection.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # noqa: BLE001 - any doubt: do not use it
        return True
