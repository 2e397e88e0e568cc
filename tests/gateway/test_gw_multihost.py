"""Two gateway hosts — separate ``dexto gateway serve`` processes on 127.0.0.2 and 127.0.0.3 —
sharing one PostgreSQL schema and one Redis key prefix: one global rate limit (within the
documented lease bound, plus any fail-open bypass the hosts count) and an exact ledger.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from _gwhelpers import chat_body, ledger_state, make_account
from _gwproc import bypassed, fire, gateway_host, host_env

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.db import Database

HOSTS = ("127.0.0.2", "127.0.0.3")
BURST = 24
LEASE = 4
RATE = 0.01  # refill per second: below one token over the test


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_hosts_one_rate_limit_exact_ledger(
    pg_url: str, redis_url: str, redis_prefix: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    credits = 100_000_000
    account_id, key = make_account(pg_url, "multihost@example.com", credits)
    env = host_env(
        redis_url,
        redis_prefix,
        rate_limit_rps=str(RATE),
        rate_limit_burst=str(BURST),
        redis_lease_max=str(LEASE),
    )
    with (
        gateway_host(HOSTS[0], pg_url, fake[1], env, tmp_path / "a.log") as (a, _),
        gateway_host(HOSTS[1], pg_url, fake[1], env, tmp_path / "b.log") as (b, _),
    ):
        t0 = time.monotonic()
        results = asyncio.run(fire([a, b], key, 3 * BURST))
        results += asyncio.run(fire([b, a], key, BURST))
        elapsed = time.monotonic() - t0
        with httpx.Client() as c:
            skipped = sum(bypassed(c.get(u + "/metrics").text) for u in (a, b))
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses.count(200)
    workers = len(HOSTS)
    # documented bound: burst + rate * T + N * (lease - 1); the hosts start holding no lease.
    assert admitted <= BURST + int(RATE * elapsed) + 1 + skipped
    # each host may end holding lease - 1 unspent tokens; nothing else is lost
    assert admitted >= BURST - workers * (LEASE - 1)
    state = ledger_state(pg_url, account_id)
    assert state.credits == credits
    assert {rid for rid, *_ in state.charges} == {rid for s, rid in results if s == 200}
    assert len(state.charges) == admitted
    assert state.balance == state.ledger_sum  # zero drift: the balance is its ledger's sum
    assert credits - state.balance == -sum(amount for _, amount, _, _ in state.charges)
    assert state.holds == 0


async def _post_slow(url: str, key: str) -> int | None:
    """A request the fake upstream answers only after 60 s (its host is killed before)."""
    try:
        async with httpx.AsyncClient(timeout=90) as c:
            r = await c.post(
                url + "/v1/chat/completions",
                json=chat_body(fake={"latency_ms": 60_000}),
                headers={"Authorization": f"Bearer {key}"},
            )
            return r.status_code
    except httpx.HTTPError:
        return None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def _own_holds(db_url: str) -> int:
    """Holds of requests (a worker's reservation, ``rsv-…``, may be placed beside them)."""
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.read():
            return int(conn.one("SELECT COUNT(*) FROM holds WHERE request_id NOT LIKE 'rsv-%'")[0])
    finally:
        db.close_all()


def test_hold_of_a_killed_host_is_swept_by_the_other(
    pg_url: str, redis_url: str, redis_prefix: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    credits = 100_000_000
    account_id, key = make_account(pg_url, "killed@example.com", credits)
    env = host_env(
        redis_url, redis_prefix, rate_limit_rps="0", hold_ttl_s="2", sweep_interval_s="0.3"
    )
    with (
        gateway_host(HOSTS[0], pg_url, fake[1], env, tmp_path / "a.log") as (a, proc_a),
        gateway_host(HOSTS[1], pg_url, fake[1], env, tmp_path / "b.log") as (b, _),
    ):

        async def scenario() -> tuple[int | None, int]:
            slow = asyncio.create_task(_post_slow(a, key))
            for _ in range(200):  # bounded: until host A's hold is in the database
                if _own_holds(pg_url) == 1:
                    break
                await asyncio.sleep(0.05)
            held = _own_holds(pg_url)
            proc_a.kill()  # SIGKILL: no shutdown code runs on host A
            return await slow, held

        status, held = asyncio.run(scenario())
        assert held == 1 and status is None
        for _ in range(200):  # bounded: host B's sweeper removes the expired hold
            state = ledger_state(pg_url, account_id)
            if state.holds == 0:
                break
            time.sleep(0.1)
        with httpx.Client(timeout=30) as c:
            after = c.post(b + "/v1/chat/completions", json=chat_body(), headers={
                "Authorization": f"Bearer {key}"})  # fmt: skip
    assert state.holds == 0, "host B did not sweep host A's hold"
    assert after.status_code == 200
    final = ledger_state(pg_url, account_id)
    assert final.holds == 0
    assert final.balance == final.ledger_sum  # exact: the balance is its ledger's sum
    assert len(final.charges) == 1  # host B's request; the killed one was never delivered
