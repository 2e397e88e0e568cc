"""Runs the synchronous data layer from async code, and tracks database outages.

Both dialects run on a small thread pool, one connection per thread, so a slow query or a SQLite
writer waiting for another process's lock never blocks the event loop. SQLite writers of one
process queue on an in-process mutex (see :meth:`Conn.write`).

An error that means the database is unreachable (see :func:`db.is_unavailable`) becomes
:class:`DatabaseUnavailable`. The first one opens an *outage*: it is logged once, with its cause;
while it lasts, at most one call per :data:`PROBE_INTERVAL_S` tries the database and the others
fail at once. The first call that succeeds closes the outage (logged once, with the count of
calls refused), so recovery needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from dexto.gateway.db import Conn, Database, DatabaseUnavailable, describe, is_unavailable
from dexto.gateway.logs import log_event

__all__ = ["PROBE_INTERVAL_S", "DbRunner"]

P = ParamSpec("P")
T = TypeVar("T")

PROBE_INTERVAL_S = 1.0
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
        self._cause = ""
        self.refused = 0  # calls refused during the current outage

    @property
    def outage(self) -> bool:
        return self._down_since is not None

    async def run(self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs) -> T:
        if self._down_since is not None and time.monotonic() < self._next_probe:
            self.refused += 1
            raise DatabaseUnavailable(self._cause, fix=_FIX)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, partial(self._call, fn, *args, **kw)
            )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._mark_down(exc)
            raise DatabaseUnavailable(self._cause, fix=_FIX) from None
        if self._down_since is not None:
            self._mark_up()
        return result

    def _mark_down(self, exc: BaseException) -> None:
        self.refused += 1
        self._next_probe = time.monotonic() + self.probe_interval_s
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._cause = "The gateway's database is unavailable; nothing was charged."
            log_event(self.log, "database unavailable", logging.ERROR, error=describe(exc))

    def _mark_up(self) -> None:
        log_event(self.log, "database available again", logging.WARNING, count=self.refused)
        self._down_since = None
        self.refused = 0

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None:
            # SQLite: a file moved or removed is an outage until it is back; a file replaced
            # under a running gateway is refused (its -wal/-shm belong to the old file).
            self.db.check_file(conn)
        if conn is None:
            conn = self._local.conn = self.db.connect(create=False)
        before = conn.statements
        try:
            return fn(conn, *args, **kw)
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
            return fn(conn, *args, **kw)
        except Exception:
            if _is_broken(conn):
                self._drop(conn)
            raise

    def _drop(self, conn: Conn) -> None:
        self._local.conn = None
        self.db.forget(conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.db.close_all()


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
