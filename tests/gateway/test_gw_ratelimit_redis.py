"""Token buckets: in-process and shared through Redis (two limiters = two workers)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from _gwhelpers import chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.ratelimit import LocalLimiter, RedisLimiter


def test_local_bucket_refills() -> None:
    lim = LocalLimiter(rate=2.0, burst=3)
    assert [lim.take("k", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("k", 100.0) == pytest.approx(0.5)
    assert lim.take("other", 100.0) == 0.0
    assert lim.take("k", 101.0) == 0.0  # refilled 2 tokens in 1 s (one was owed)
    assert LocalLimiter(rate=0, burst=1).take("k", 0.0) == 0.0  # disabled


@pytest.mark.redis
def test_redis_bucket_is_shared_between_workers(redis_url: str, redis_prefix: str) -> None:
    async def run() -> list[float]:
        a = RedisLimiter(redis_url, rate=0.01, burst=4, prefix=redis_prefix)
        b = RedisLimiter(redis_url, rate=0.01, burst=4, prefix=redis_prefix)
        try:
            return [await (a if i % 2 else b).acquire("key1") for i in range(6)]
        finally:
            await a.close()
            await b.close()

    waits = asyncio.run(run())
    assert waits[:4] == [0.0] * 4
    assert all(w > 1 for w in waits[4:])


@pytest.mark.redis
def test_redis_unreachable_fails_open() -> None:
    async def run() -> float:
        lim = RedisLimiter("redis://127.0.0.1:1/0", rate=1, burst=1)
        try:
            return await lim.acquire("k")
        finally:
            await lim.close()

    assert asyncio.run(run()) == 0.0


@pytest.mark.redis
def test_gateway_429_through_redis(
    redis_url: str, redis_prefix: str, sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(
        sqlite_url,
        fake[1],
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rate_limit_rps=0.01,
        rate_limit_burst=2,
    ) as gw:
        with httpx.Client() as c:
            codes = [
                c.post(gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth()).status_code
                for _ in range(3)
            ]
            r = c.post(gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth())
    assert codes == [200, 200, 429]
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
