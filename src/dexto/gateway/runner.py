"""Runs the synchronous data layer from async code.

SQLite: one connection per worker, called inline on the event loop (each transaction takes
microseconds; a thread hop would cost more than the work). PostgreSQL: a small thread pool, one
connection per thread, so a slow query never blocks the loop and transactions run in parallel.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from dexto.gateway.db import Conn, Database

__all__ = ["DbRunner"]

P = ParamSpec("P")
T = TypeVar("T")


class DbRunner:
    def __init__(self, db: Database, *, pool_size: int = 8) -> None:
        self.db = db
        self._inline = db.dialect == "sqlite"
        self._conn: Conn | None = None
        self._local = threading.local()
        self._executor: ThreadPoolExecutor | None = None
        if not self._inline:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, pool_size), thread_name_prefix="dexto-gw-db"
            )

    async def run(self, fn: Callable[Concatenate[Conn, P], T], *args: P.args, **kw: P.kwargs) -> T:
        if self._inline:
            if self._conn is None:
                self._conn = self.db.connect()
            return fn(self._conn, *args, **kw)
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._call, fn, *args, **kw))

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.db.connect()
        try:
            return fn(conn, *args, **kw)
        except Exception:
            if _is_broken(conn):
                self._local.conn = None
                self.db.forget(conn)
            raise

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.db.close_all()
        self._conn = None


def _is_broken(conn: Conn) -> bool:
    closed = getattr(conn.raw, "closed", False)
    if closed:
        return True
    try:
        import psycopg

        return bool(conn.raw.info.transaction_status == psycopg.pq.TransactionStatus.UNKNOWN)
    except Exception:  # noqa: BLE001
        return True
