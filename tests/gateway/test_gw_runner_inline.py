"""SQLite execution model of :class:`DbRunner`: inline on the loop, the pool only when locked."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dexto.gateway.db import Database
from dexto.gateway.runner import DbRunner


def _insert(conn: Any, value: str) -> None:
    with conn.write():
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))


def _values(conn: Any) -> list[str]:
    with conn.read():
        return [r[0] for r in conn.all("SELECT v FROM t ORDER BY rowid")]


def _lock(path: Path) -> sqlite3.Connection:
    """Another connection (as another process would) takes SQLite's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_locked_database_moves_the_whole_call_to_the_pool(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (v TEXT NOT NULL)")
    setup.close()

    async def scenario() -> None:
        runner = DbRunner(Database(f"sqlite:///{path}"), pool_size=2)
        try:
            await runner.run(_insert, "inline")
            assert runner.offloaded == 0

            holder = _lock(path)
            first = asyncio.ensure_future(runner.run(_insert, "waited"))
            await asyncio.sleep(0.05)  # the first waits on a database thread for the lock
            # This process's writer mutex is now held by that thread: a second writer does
            # not block the loop either, it queues on the pool.
            second = asyncio.ensure_future(runner.run(_insert, "queued"))
            for _ in range(5):
                await asyncio.sleep(0.01)  # the loop keeps running meanwhile
            assert not first.done() and not second.done()
            assert await runner.run(_values) == ["inline"]  # reads still run inline (WAL)
            holder.execute("COMMIT")
            holder.close()
            await asyncio.gather(first, second)
            assert runner.offloaded == 2
            assert sorted(await runner.run(_values)) == ["inline", "queued", "waited"]

            # A cancelled caller: the call still completes, whole, before the cancel surfaces.
            holder = _lock(path)
            cancelled = asyncio.ensure_future(runner.run(_insert, "cancelled"))
            await asyncio.sleep(0.05)
            cancelled.cancel()
            for _ in range(5):
                await asyncio.sleep(0.01)
            assert not cancelled.done()  # still waiting for its transaction to finish
            holder.execute("COMMIT")
            holder.close()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert (await runner.run(_values)).count("cancelled") == 1
            assert not runner.outage
        finally:
            runner.close()

    asyncio.run(scenario())
