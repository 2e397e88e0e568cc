"""Local-first Redis limiter: tokens leased in batches from one shared bucket.

The documented bound: over any interval, admissions for one key across N limiters (workers) are
at most ``burst + rate * T + N * (lease_max - 1)``. Refill here is negligible (rate 0.001/s), and
deleting the Redis key stands in for a full refill, so the bound is reached exactly (N = 1 with
lease 1 is the old one-call-per-request limiter: exactly ``burst``).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.gateway.ratelimit import RedisLimiter


def _limiters(
    url: str, prefix: str, n: int, lease: int, burst: int, bypassed: list[str] | None = None
) -> list[RedisLimiter]:
    on_bypass = None if bypassed is None else bypassed.append
    return [
        RedisLimiter(
            url, rate=0.001, burst=burst, prefix=prefix, lease_max=lease, on_bypass=on_bypass
        )
        for _ in range(n)
    ]


@pytest.mark.redis
@pytest.mark.parametrize(
    ("workers", "lease", "burst"), [(1, 1, 10), (3, 4, 20), (2, 8, 40), (4, 2, 16)]
)
def test_admissions_reach_exactly_the_documented_bound(
    redis_url: str, redis_prefix: str, workers: int, lease: int, burst: int
) -> None:
    bypassed: list[str] = []  # checks skipped (fail-open) when Redis is slower than its timeout

    async def run() -> tuple[int, int]:
        lims = _limiters(redis_url, redis_prefix, workers, lease, burst, bypassed)
        try:
            for lim in lims:  # each worker spends one token and keeps the rest of its lease
                assert await lim.acquire("k") == 0.0
            client = redis.Redis.from_url(redis_url)
            client.delete(f"{redis_prefix}rl:k")  # the bucket is full again (a refill)
            client.close()
            waits = await asyncio.gather(
                *(lims[i % workers].acquire("k") for i in range(4 * (burst + workers * lease)))
            )
            again = [await lim.acquire("k") for lim in lims]
        finally:
            for lim in lims:
                await lim.close()
        return sum(1 for w in waits if w == 0.0), sum(1 for w in again if w == 0.0)

    admitted, later = asyncio.run(run())
    # burst >= 2 * workers * lease: every first lease is a full one, so each worker starts
    # the interval holding lease - 1 tokens
    bound = burst + workers * (lease - 1)
    assert admitted <= bound + len(bypassed)
    if not bypassed:
        assert admitted == bound
        assert later == 0  # every token spent: refusals are remembered, Redis is empty


@pytest.mark.redis
def test_one_call_leases_at_most_half_the_bucket(redis_url: str, redis_prefix: str) -> None:
    async def run() -> list[float]:
        (lim,) = _limiters(redis_url, redis_prefix, 1, 8, 100)
        try:
            await lim.acquire("k")
            client = redis.Redis.from_url(redis_url)
            after_one = float(client.hget(f"{redis_prefix}rl:k", "tokens") or -1)
            for _ in range(7):
                await lim.acquire("k")  # spent locally: Redis unchanged
            after_eight = float(client.hget(f"{redis_prefix}rl:k", "tokens") or -1)
            await lim.acquire("k")
            after_nine = float(client.hget(f"{redis_prefix}rl:k", "tokens") or -1)
            client.close()
        finally:
            await lim.close()
        return [after_one, after_eight, after_nine]

    one, eight, nine = asyncio.run(run())
    assert 92 <= one < 92.5 and 92 <= eight < 92.6  # 8 leased; refill 0.001/s
    # the eighth spent the last leased token: 7 more leased in the background (lease_max - 1)
    assert 85 <= nine < 85.7


@pytest.mark.redis
def test_the_next_lease_is_taken_before_the_next_request(redis_url: str, redis_prefix: str) -> None:
    """Spending the last leased token starts the next lease in the background (lease_max - 1
    tokens): a steady sequence of requests for one key never waits for Redis after the first."""

    async def run() -> list[float]:
        (lim,) = _limiters(redis_url, redis_prefix, 1, 4, 100)
        client = redis.Redis.from_url(redis_url)

        def tokens() -> float:
            return float(client.hget(f"{redis_prefix}rl:k", "tokens") or -1)

        seen: list[float] = []
        try:
            for _ in range(3):
                for _ in range(4 if not seen else 3):
                    assert await lim.acquire("k") == 0.0
                for _ in range(1000):  # the background lease lands (bounded by its timeout)
                    await asyncio.sleep(0.001)
                    if "k" not in lim._queues:
                        break
                seen.append(tokens())
            # a request now spends a token leased before it came: Redis is not called
            before = tokens()
            assert await lim.acquire("k") == 0.0
            seen.append(tokens() - before)
        finally:
            client.close()
            await lim.close()
        return seen

    first, second, third, spent = asyncio.run(run())
    assert 93 <= first < 93.5 and 90 <= second < 90.6 and 87 <= third < 87.7
    assert spent == 0.0


@pytest.mark.redis
def test_queued_requests_survive_a_cancelled_leader(redis_url: str, redis_prefix: str) -> None:
    async def run() -> list[float]:
        (lim,) = _limiters(redis_url, redis_prefix, 1, 4, 100)
        try:
            tasks = [asyncio.create_task(lim.acquire("k")) for _ in range(10)]
            await asyncio.sleep(0)  # every task started: the first leads, nine queue
            tasks[0].cancel()  # the leader goes away mid-lease (a client disconnect)
            tasks[3].cancel()  # and one queued request
            done = await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), timeout=30
            )
            return [x for x in done if isinstance(x, float)]
        finally:
            await lim.close()

    waits = asyncio.run(run())
    assert waits == [0.0] * 8  # nobody left waiting; every other request admitted


@pytest.mark.redis
@pytest.mark.parametrize("cancelled", [1, 2, 3, 5])
def test_a_cancellation_after_the_first_lease_leaves_nobody_waiting(
    redis_url: str, redis_prefix: str, cancelled: int
) -> None:
    """Whatever the cancelled request was doing then (admitted, chosen to lead the next lease,
    leading it, or queued), every other request is answered."""

    async def run() -> list[object]:
        (lim,) = _limiters(redis_url, redis_prefix, 1, 2, 100)
        try:
            tasks = [asyncio.create_task(lim.acquire("k")) for _ in range(6)]
            await asyncio.sleep(0)
            while not tasks[0].done():  # bounded by the lease call's timeout
                await asyncio.sleep(0)
            tasks[cancelled].cancel()
            return await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), timeout=30
            )
        finally:
            await lim.close()

    results = asyncio.run(run())
    assert [r for i, r in enumerate(results) if i != cancelled] == [0.0] * 5


def test_queued_requests_fail_open_together_and_each_is_counted() -> None:
    reasons: list[str] = []

    async def run() -> list[float]:
        lim = RedisLimiter(
            "redis://127.0.0.1:1/0", rate=1, burst=10, lease_max=8, on_bypass=reasons.append
        )
        try:
            return list(await asyncio.gather(*(lim.acquire("k") for _ in range(5))))
        finally:
            await lim.close()

    assert asyncio.run(run()) == [0.0] * 5
    assert len(reasons) == 5 and set(reasons) <= {"error", "timeout"}


@pytest.mark.redis
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    workers=st.integers(1, 3),
    lease=st.integers(1, 5),
    burst=st.integers(1, 12),
    ops=st.lists(st.one_of(st.integers(0, 2), st.just(-1)), min_size=1, max_size=60),
)
def test_any_interleaving_stays_within_the_bound(
    redis_url: str, redis_prefix: str, workers: int, lease: int, burst: int, ops: list[int]
) -> None:
    """ops: a worker's acquire (its index, modulo the worker count) or -1, a full refill. Every
    stretch between refills admits at most ``burst + N * (lease - 1)`` (the first: ``burst``)."""
    key = uuid.uuid4().hex

    async def run() -> list[int]:
        bypassed: list[str] = []  # a check skipped (Redis too slow) admits without a token
        lims = _limiters(redis_url, redis_prefix, workers, lease, burst, bypassed)
        client = redis.Redis.from_url(redis_url)
        admitted = [0]
        try:
            for op in ops:
                if op < 0:
                    client.delete(f"{redis_prefix}rl:{key}")
                    admitted.append(0)
                else:
                    skipped = len(bypassed)
                    allowed = await lims[op % workers].acquire(key) == 0.0
                    admitted[-1] += allowed and len(bypassed) == skipped
        finally:
            client.close()
            for lim in lims:
                await lim.close()
        return admitted

    first, *later = asyncio.run(run())
    assert first <= burst
    assert all(n <= burst + workers * (lease - 1) for n in later)
