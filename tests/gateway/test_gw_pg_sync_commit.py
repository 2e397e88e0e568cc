"""A batch that finds no flush running or awaited commits synchronously itself (pg_ledger's
``commit`` argument, pg_batch's ``sync_when_idle``): the statement's own transaction commits
under the session's ``synchronous_commit`` and gives the same results; a lone call needs no flush
transaction; a batch run while a flush is in flight commits asynchronously and waits for the
next flush."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from _gwhelpers import chat_body, ledger_state, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway import accounts, ledger, pg_ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.runner import DbRunner

pytestmark = pytest.mark.postgres

L = 5_000


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[str, Conn]]:
    db = Database(pg_url)
    migrate(db)
    yield pg_url, db.connect()
    db.close_all()


def _key(conn: Conn, tag: str) -> tuple[str, str]:
    acct = accounts.create_account(conn, f"{tag}@example.com", credits_micros=100_000)
    _, key = accounts.create_key(conn, acct.id)
    return acct.id, accounts.hash_key(key)


async def _step(cur: Any, params: Any, commit: str | None = None) -> Any:
    return await pg_ledger.step_many(cur, *params, commit)


def test_a_synced_statement_commits_under_the_given_setting_with_the_same_results(
    pg: tuple[str, Conn],
) -> None:
    url, conn = pg
    account_id, kh = _key(conn, "s")
    admit = pg_ledger.admit_params(kh, "r1", 10, ttl_ms=60_000, now=1)
    admit2 = pg_ledger.admit_params(kh, "r2", 10, ttl_ms=60_000, now=1)
    admit3 = pg_ledger.admit_params(kh, "r3", 10, ttl_ms=60_000, now=2)
    settle = pg_ledger.settle_params("r1", account_id, 7, overdraft_limit_micros=L, now=2)
    settle2 = pg_ledger.settle_params("r2", account_id, 3, overdraft_limit_micros=L, now=2)
    calls: list[tuple[Any, Any]] = [
        (pg_ledger.admit_one, admit),
        (_step, ([], [admit, admit2])),
        (pg_ledger.settle_one, settle),
        (_step, ([settle, settle2], [])),
        (_step, ([settle], [admit3])),
    ]

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(url) as c:
            cur = c.cursor()
            for fn, params in calls:
                plain = await fn(cur, params)
                await cur.execute("SHOW synchronous_commit")
                assert await cur.fetchone() == ("off",)
                await c.rollback()
                synced = await fn(cur, params, "local")
                assert synced == plain
                await cur.execute("SHOW synchronous_commit")
                assert await cur.fetchone() == ("local",)
                if params == ([], [admit, admit2]):
                    await c.commit()  # the settlements need the holds
                else:
                    await c.rollback()

    asyncio.run(main())


def test_a_lone_call_commits_synchronously_without_a_flush(pg: tuple[str, Conn]) -> None:
    url, conn = pg
    account_id, kh = _key(conn, "l")

    async def main() -> None:
        runner = DbRunner(Database(url), pool_size=2)
        try:
            assert (await runner.run(ledger.admit, kh, "a0", 10, ttl_ms=60_000)).status == "ok"
            pool, b = runner.pg, runner.batcher
            assert pool is not None and b is not None
            with psycopg.connect(url) as c:  # the session setting, learnt at the first connect
                assert (pool.commit_mode,) == c.execute("SHOW synchronous_commit").fetchone()
            flushes, synced = pool.flushes, b.synced
            assert (await runner.run(ledger.admit, kh, "a1", 10, ttl_ms=60_000)).status == "ok"
            s = await runner.run(ledger.settle, "a1", account_id, 4, overdraft_limit_micros=L)
            assert s.charged_micros == 4
            assert (pool.flushes, b.synced) == (flushes, synced + 2)
            b.sync_when_idle = False
            assert (await runner.run(ledger.admit, kh, "a2", 10, ttl_ms=60_000)).status == "ok"
            assert (pool.flushes, b.synced) == (flushes + 1, synced + 2)
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())


def test_a_batch_run_while_a_flush_is_in_flight_waits_for_the_next_flush(
    pg: tuple[str, Conn],
) -> None:
    """The only connection is busy: a barrier's flush waits for it (in flight), so the admission
    queued meanwhile commits asynchronously and is served by a flush started after its commit."""
    url, conn = pg
    _, kh = _key(conn, "f")

    async def main() -> None:
        runner = DbRunner(Database(url), pool_size=1)
        try:
            assert (await runner.run(ledger.admit, kh, "b0", 10, ttl_ms=60_000)).status == "ok"
            pool, b = runner.pg, runner.batcher
            assert pool is not None and b is not None
            flushes, synced = pool.flushes, b.synced
            gate = asyncio.Event()

            async def hold(cur: Any) -> None:
                await gate.wait()

            busy = asyncio.ensure_future(pool.run(hold))
            await asyncio.sleep(0)
            barrier = asyncio.ensure_future(pool.barrier())
            await asyncio.sleep(0)
            assert not pool.flush_idle()
            admit = asyncio.ensure_future(runner.run(ledger.admit, kh, "b1", 10, ttl_ms=60_000))
            for _ in range(5):
                await asyncio.sleep(0)
            gate.set()
            await asyncio.gather(busy, barrier)
            assert (await admit).status == "ok"
            assert (pool.flushes, b.synced) == (flushes + 2, synced)
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())


def test_a_gateway_whose_sessions_commit_asynchronously_charges_every_request_once(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """The operator's trade (docs/gateway.md): ``synchronous_commit=off`` in the URL. The batcher
    learns ``off`` as the sessions' mode, so a batch's own commit and the barrier's flush commit
    both return without waiting for the WAL flush; the ledger is the same."""
    url = pg_url.replace(
        "options=-csearch_path", "options=-csynchronous_commit%3Doff%20-csearch_path"
    )
    assert url != pg_url
    with start_gateway(url, fake[1], credits_micros=1_000_000) as gw:
        with psycopg.connect(url) as c:
            assert c.execute("SHOW synchronous_commit").fetchone() == ("off",)

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth()
                        )
                        for _ in range(24)
                    )
                )

        responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 24
    state = ledger_state(url, gw.account_id)
    ids = sorted(r.headers["x-request-id"] for r in responses)
    assert sorted(c[0] for c in state.charges) == ids  # each answered request charged once
    assert all(c[1] < 0 for c in state.charges)  # a charge is a negative ledger amount
    assert state.balance == state.ledger_sum == 1_000_000 + sum(c[1] for c in state.charges)
    assert state.holds == 0
