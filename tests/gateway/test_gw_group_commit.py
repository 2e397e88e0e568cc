"""SQLite group commit (gateway/sqlite_writer.py) on a real database file: exactness, isolation
of a failing call, cancellation, the locked-database fallback, and the WAL checkpointer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from dexto.gateway import accounts, ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.runner import DbRunner
from dexto.gateway.sqlite_writer import PROBE_EVERY, SOLO_STEPS

L = 5_000  # overdraft limit


def _setup(url: str, credits: int, n_accounts: int = 1) -> list[tuple[str, str]]:
    db = Database(url)
    migrate(db)
    conn = db.connect()
    out = []
    for i in range(n_accounts):
        acct = accounts.create_account(conn, f"g{i}@example.com", credits_micros=credits)
        _, key = accounts.create_key(conn, acct.id)
        out.append((acct.id, accounts.hash_key(key)))
    db.close_all()
    return out


def _state(conn: Conn, account_id: str) -> tuple[int, int, int]:
    with conn.read():
        b = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
        s = conn.one(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = ?",
            (account_id,),
        )
        h = conn.one("SELECT COUNT(*) FROM holds WHERE account_id = ?", (account_id,))
    assert b and s and h
    return int(b[0]), int(s[0]), int(h[0])


def _commits(runner: DbRunner) -> int:
    assert runner.sqlite is not None and runner.sqlite.conn is not None
    return runner.sqlite.conn.commits


def test_concurrent_admits_and_settles_share_commits_and_stay_exact(sqlite_url: str) -> None:
    """64 requests admit, then settle, concurrently: few commits, the reference model holds
    exactly (admitted iff affordable in queue order, debits clamped at the overdraft floor)."""
    start, hold, cost, n = 30_000, 1_000, 1_700, 64
    (acct, kh), *_ = _setup(sqlite_url, start)

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=2)
        try:
            await runner.run(_state, acct)  # opens the loop's connection
            before = _commits(runner)
            admits = await asyncio.gather(
                *(runner.run(ledger.admit, kh, f"r{i}", hold, ttl_ms=60_000) for i in range(n))
            )
            # Queue order is submission order: the first start // hold requests fit.
            statuses = [a.status for a in admits]
            assert statuses == ["ok"] * (start // hold) + ["insufficient"] * (n - start // hold)
            assert [a.available_micros for a in admits[:3]] == [29_000, 28_000, 27_000]
            ok = [f"r{i}" for i, s in enumerate(statuses) if s == "ok"]
            settles = await asyncio.gather(
                *(
                    runner.run(ledger.settle, rid, acct, cost, overdraft_limit_micros=L)
                    for rid in ok
                )
            )
            commits = _commits(runner) - before
            assert commits <= 4  # one writer step per loop iteration, not one per call
            assert runner.sqlite is not None and runner.sqlite.batches >= 2
            bal = start
            for s in settles:
                debit = min(cost, max(0, bal + L))
                assert (s.charged_micros, s.written_off_micros) == (debit, cost - debit)
                bal -= debit
            assert await runner.run(_state, acct) == (bal, bal, 0)
            assert bal >= -L
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_lone_writer_runs_at_once_until_writers_are_concurrent_again(sqlite_url: str) -> None:
    (acct, _kh), *_ = _setup(sqlite_url, 0)

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=2)
        sq = runner.sqlite
        assert sq is not None
        try:
            for i in range(2 * SOLO_STEPS):
                await runner.run(ledger.credit, acct, 1, request_id=f"s{i}")
            assert sq.direct
            batches = sq.batches
            # Concurrent writers: a queued probe call finds company, grouping resumes.
            rounds = 0
            while sq.direct and rounds < 2 * PROBE_EVERY:
                await asyncio.gather(
                    *(
                        runner.run(ledger.credit, acct, 1, request_id=f"p{rounds}-{i}")
                        for i in range(6)
                    )
                )
                rounds += 1
            assert not sq.direct and sq.batches > batches
            total = 2 * SOLO_STEPS + 6 * rounds
            assert await runner.run(_state, acct) == (total, total, 0)
        finally:
            runner.close()

    asyncio.run(scenario())


def _bad_write(conn: Conn, account_id: str) -> None:
    """Writes, then fails inside the same ``write()`` block."""
    with conn.write():
        conn.execute(
            "UPDATE accounts SET balance_micros = balance_micros + 999 WHERE id = ?",
            (account_id,),
        )
        raise RuntimeError("boom")


def test_a_failing_call_rolls_back_only_itself(sqlite_url: str) -> None:
    (acct, kh), *_ = _setup(sqlite_url, 10_000)

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=2)
        try:
            await runner.run(_state, acct)
            sq = runner.sqlite
            assert sq is not None
            before = _commits(runner)
            results = await asyncio.gather(
                runner.run(ledger.admit, kh, "a", 1_000, ttl_ms=60_000),
                runner.run(ledger.settle, "x", "no-such-account", 5, overdraft_limit_micros=L),
                sq.grouped(_bad_write, acct),
                runner.run(ledger.credit, acct, 500, request_id="top-up"),
                runner.run(ledger.settle, "a", acct, 300, overdraft_limit_micros=L),
                return_exceptions=True,
            )
            assert _commits(runner) - before == 1  # all five in one transaction
            assert isinstance(results[0], ledger.AdmitResult) and results[0].status == "ok"
            assert isinstance(results[1], LookupError)
            assert isinstance(results[2], RuntimeError)
            assert results[3] == 10_500
            assert isinstance(results[4], ledger.SettleResult)
            assert results[4].charged_micros == 300
            assert await runner.run(_state, acct) == (10_200, 10_200, 0)
        finally:
            runner.close()

    asyncio.run(scenario())


def test_cancelled_callers_land_exactly_once_or_not_at_all(sqlite_url: str) -> None:
    (acct, _kh), *_ = _setup(sqlite_url, 0)

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=2)
        sq = runner.sqlite
        assert sq is not None
        try:
            await runner.run(_state, acct)
            # Cancelled while queued: the call never runs; the other calls of its batch land.
            calls = [
                asyncio.ensure_future(runner.run(ledger.credit, acct, 1, request_id=f"q{i}"))
                for i in range(3)
            ]
            await asyncio.sleep(0)  # each has queued its call; the writer step is scheduled
            assert len(sq._queue) == 3
            calls[1].cancel()
            done = await asyncio.gather(*calls, return_exceptions=True)
            assert isinstance(done[1], asyncio.CancelledError)
            assert await runner.run(_state, acct) == (2, 2, 0)

            # Cancelled after the writer step ran it, before the caller resumed: the caller
            # gets the cancellation, the call has committed once.
            late = asyncio.ensure_future(runner.run(ledger.credit, acct, 10, request_id="late"))
            await asyncio.sleep(0)
            assert len(sq._queue) == 1
            asyncio.get_running_loop().call_soon(late.cancel)  # runs right after the step
            with pytest.raises(asyncio.CancelledError):
                await late
            assert await runner.run(_state, acct) == (12, 12, 0)
            assert await runner.run(ledger.credit, acct, 10, request_id="late") == 12
        finally:
            runner.close()

    asyncio.run(scenario())


def test_a_locked_database_sends_the_whole_batch_to_the_pool(sqlite_url: str) -> None:
    (acct, _kh), *_ = _setup(sqlite_url, 0)
    path = sqlite_url[len("sqlite:///") :]

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=2)
        try:
            await runner.run(_state, acct)
            holder = sqlite3.connect(path, isolation_level=None)  # as another process would
            holder.execute("BEGIN IMMEDIATE")
            calls = [
                asyncio.ensure_future(runner.run(ledger.credit, acct, 7, request_id=f"c{i}"))
                for i in range(3)
            ]
            for _ in range(5):
                await asyncio.sleep(0.01)  # the loop keeps running while they wait
            assert not any(c.done() for c in calls)
            holder.execute("COMMIT")
            holder.close()
            assert sorted(await asyncio.gather(*calls)) == [7, 14, 21]
            assert runner.offloaded == 3
            assert await runner.run(_state, acct) == (21, 21, 0)
        finally:
            runner.close()

    asyncio.run(scenario())


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dexto-gw-checkpoint"]


def test_the_wal_is_checkpointed_off_the_loop_and_stops_at_close(sqlite_url: str) -> None:
    (acct, _kh), *_ = _setup(sqlite_url, 0)
    wal = Path(sqlite_url[len("sqlite:///") :] + "-wal")

    async def writes(runner: DbRunner, tag: str, n: int) -> None:
        for i in range(n):
            await runner.run(ledger.credit, acct, 1, request_id=f"{tag}{i}")

    async def until(cond: Any) -> None:
        for _ in range(2_000):
            if cond():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("condition not reached")

    async def scenario() -> None:
        runner = DbRunner(Database(sqlite_url), pool_size=1)
        sq = runner.sqlite
        assert sq is not None and sq.checkpointer is not None
        ck = sq.checkpointer
        ck.every_commits = 10**9  # only the tests below wake it
        ck.interval_s = 3600.0
        try:
            await runner.run(_state, acct)
            assert sq.conn is not None
            # The loop's connection never checkpoints.
            assert sq.conn.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            assert len(_checkpointer_threads()) == 1
            await writes(runner, "a", 300)
            grown = os.stat(wal).st_size
            await writes(runner, "b", 300)
            assert os.stat(wal).st_size > grown  # nothing checkpoints on the request path
            grown = os.stat(wal).st_size

            ck._wake.set()  # a PASSIVE checkpoint backfills the WAL …
            await until(lambda: ck.rounds >= 1)
            await writes(runner, "c", 300)
            # … so the next writer restarts the WAL from its start: the file does not grow.
            assert os.stat(wal).st_size <= grown
            assert ck.checkpoints >= 1 and ck.truncates == 0

            # A checkpoint after which writes landed (here: one, from another connection, counted
            # as the loop's) leaves the WAL unrestarted. Below restart_wal_bytes that is let be:
            # the loop's writes are not held.
            asked: list[int] = []
            hold, passive = ck.hold, ck._passive
            assert hold is not None
            ck.hold = lambda ready: asked.append(1) or hold(ready)
            other = sqlite3.connect(
                str(wal)[: -len("-wal")], isolation_level=None, check_same_thread=False
            )

            def passive_then_a_write(conn: Conn) -> tuple[bool, int]:
                result = passive(conn)
                other.execute(f"PRAGMA user_version = {ck.checkpoints}")
                ck.commits += 1
                return result

            ck._passive = passive_then_a_write  # type: ignore[method-assign]
            await writes(runner, "f", 10)
            rounds = ck.rounds
            ck._wake.set()
            await until(lambda: ck.rounds > rounds)
            assert asked == [] and ck.holds == 0
            # From restart_wal_bytes on, the checkpoint is finished under a hold.
            ck.restart_wal_bytes = 0
            await writes(runner, "g", 10)
            rounds = ck.rounds
            ck._wake.set()
            await until(lambda: ck.rounds > rounds)
            assert asked == [1] and ck.holds == 1
            ck._passive = passive  # type: ignore[method-assign]
            other.close()

            # Writes go on while the checkpoint runs: it finishes while the loop holds its write
            # steps, so the WAL still restarts.
            rounds = ck.rounds
            ck._wake.set()
            n = 0
            while ck.rounds == rounds and n < 100_000:
                await runner.run(ledger.credit, acct, 1, request_id=f"d{n}")
                n += 1
            assert ck.rounds > rounds
            await writes(runner, "e", 300)
            assert os.stat(wal).st_size <= grown
            assert not sq._held

            ck.idle_s = 0.0  # idle: a TRUNCATE checkpoint empties the file
            rounds = ck.rounds
            ck._wake.set()
            await until(lambda: ck.rounds > rounds)  # a PASSIVE one for the writes above
            ck._wake.set()
            await until(lambda: ck.truncates >= 1)
            assert os.stat(wal).st_size == 0
            assert await runner.run(_state, acct) == (1220 + n, 1220 + n, 0)
        finally:
            runner.close()
        assert _checkpointer_threads() == []
        assert not ck.running

    asyncio.run(scenario())
