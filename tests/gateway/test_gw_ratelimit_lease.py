"""Local-first Redis limiter: tokens leased in batches from one shared bucket.

The documented bound: over any interval, admissions for one key across N limiters (workers) are
at most ``burst + rate * T + N * (lease_max - 1)``. Refill here is negligible (rate 0.001/s), and
deleting the Redis key stands in for a full refill, so the bound is reached exactly (N = 1 with
lease 1 is the old one-call-per-request limiter: exactly ``burst``).
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from dexto.gateway.ratelimit import RedisLimiter


def _limiters(url: str, prefix: str, n: int, lease: int, burst: int) -> list[RedisLimiter]:
    return [
        RedisLimiter(url, rate=0.001, burst=burst, prefix=prefix, lease_max=lease) for _ in range(n)
    ]


@pytest.mark.redis
@pytest.mark.parametrize(
    ("workers", "lease", "burst"), [(1, 1, 10), (3, 4, 20), (2, 8, 40), (4, 2, 16)]
)
def test_admissions_reach_exactly_the_documented_bound(
    redis_url: str, redis_prefix: str, workers: int, lease: int, burst: int
) -> None:
    async def run() -> tuple[int, int]:
        lims = _limiters(redis_url, redis_prefix, workers, lease, burst)
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
    assert admitted == burst + workers * (lease - 1)
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
    assert 84 <= nine < 84.7
