"""The idle ``wal_checkpoint(TRUNCATE)`` (gateway/sqlite_writer.py) on a real database file: a
request's write arriving while it runs is not handed to the database threads to wait for
SQLite's lock, and a write during its copying back runs at once."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Future
from typing import Any, cast

from dexto.gateway import accounts, ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.runner import DbRunner


def _setup(url: str) -> str:
    db = Database(url)
    migrate(db)
    conn = db.connect()
    acct = accounts.create_account(conn, "t@example.com", credits_micros=10**9)
    db.close_all()
    return acct.id


class _Raw:
    """The checkpointer connection's ``raw``, calling ``before`` ahead of each checkpoint
    statement whose mode is ``mode``."""

    def __init__(self, raw: Any, mode: str, before: Any) -> None:
        self.raw, self.mode, self.before = raw, mode, before

    def execute(self, sql: str, *args: Any) -> Any:
        if f"wal_checkpoint({self.mode})" in sql:
            self.before()
        return self.raw.execute(sql, *args)


class _Conn:
    def __init__(self, raw: _Raw) -> None:
        self.raw = raw


def _balance(conn: Conn, account_id: str) -> int:
    with conn.read():
        row = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
    assert row is not None
    return int(row[0])


async def _scenario(url: str, acct: str, mode: str) -> tuple[bool, DbRunner, list[Any]]:
    """Grow the WAL (nothing copied back), then run the idle truncate on a thread; just before
    its ``mode`` checkpoint statement, a request's write is started on the loop (for PASSIVE,
    it has committed when the statement starts)."""
    runner = DbRunner(Database(url), pool_size=1)
    sq = runner.sqlite
    assert sq is not None and sq.checkpointer is not None
    ck = sq.checkpointer
    ck.every_commits = 10**9  # only the test runs checkpoints
    ck.interval_s = 3600.0
    loop = asyncio.get_running_loop()
    started: list[Future[Any]] = []
    try:
        for i in range(1500):
            await runner.run(ledger.credit, acct, 1, request_id=f"a{i}")
        wal = f"{runner.db.path}-wal"
        assert os.stat(wal).st_size > 4 * 1024 * 1024
        own = runner.db.connect(create=False, busy_timeout_s=0)

        def write() -> None:
            if not started:
                coro = runner.run(ledger.credit, acct, 1, request_id="late")
                started.append(asyncio.run_coroutine_threadsafe(coro, loop))
                if mode == "PASSIVE":
                    started[0].result(timeout=60)  # committed before the copying back ends

        conn = cast(Conn, _Conn(_Raw(own.raw, mode, write)))
        done = await loop.run_in_executor(None, ck._truncate, conn)
        assert started, "the checkpoint statement was not run"
        assert await asyncio.wrap_future(started[0]) == 10**9 + 1501
        assert await runner.run(_balance, acct) == 10**9 + 1501
        runner.db.forget(own)
        return done, runner, started
    finally:
        runner.close()


def test_a_write_during_the_truncate_is_queued_not_sent_to_wait_for_the_lock(
    sqlite_url: str,
) -> None:
    acct = _setup(sqlite_url)
    done, runner, _ = asyncio.run(_scenario(sqlite_url, acct, "TRUNCATE"))
    assert done
    assert runner.sqlite is not None and runner.sqlite.checkpointer is not None
    assert runner.sqlite.checkpointer.truncates == 1
    # The write waited for the loop's hold, not on a database thread for SQLite's write lock.
    assert runner.offloaded == 0


def test_a_write_during_the_copying_back_runs_at_once_and_the_truncate_waits(
    sqlite_url: str,
) -> None:
    acct = _setup(sqlite_url)
    done, runner, _ = asyncio.run(_scenario(sqlite_url, acct, "PASSIVE"))
    assert runner.offloaded == 0
    # Something was committed while it copied back: not idle any more, tried again later.
    assert not done
    assert runner.sqlite is not None and runner.sqlite.checkpointer is not None
    assert runner.sqlite.checkpointer.truncates == 0
