"""Token buckets: in-process and shared through Redis (two limiters = two workers)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from _gwhelpers import chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import free_port
from dexto.gateway.ratelimit import LocalLimiter, RedisLimiter

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


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


# --- Redis failures: short timeouts, circuit breaker, fail-open, reported ----------------------


class OwnRedis:
    """A redis-server of the test's own on a free port, stoppable and restartable."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            for _ in range(100):
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError("the test's redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not Path(REDIS_SERVER).exists():
        problem = f"{REDIS_SERVER} is not installed"
        if os.environ.get("DEXTO_REQUIRE_SERVICES") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never answers a byte."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def _bypassed(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dexto_gateway_ratelimit_bypassed_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def test_gateway_fails_open_when_its_redis_stops(
    own_redis: OwnRedis, sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(
        sqlite_url,
        fake[1],
        redis_url=own_redis.url,
        rate_limit_rps=100,
        rate_limit_burst=100,
        redis_lease_max=1,  # a Redis call per request (no leased tokens left to spend)
    ) as gw:
        with httpx.Client(timeout=30) as c:
            url = gw.v1 + "/chat/completions"
            assert c.post(url, json=chat_body(), headers=gw.auth()).status_code == 200
            healthy = c.get(gw.url + "/healthz").json()
            own_redis.stop()
            codes = [c.post(url, json=chat_body(), headers=gw.auth()).status_code for _ in range(5)]
            health = c.get(gw.url + "/healthz")
            text = c.get(gw.url + "/metrics").text
    assert healthy["status"] == "ok" and healthy["redis"] == "ok"
    assert codes == [200] * 5  # fail-open
    bypassed = _bypassed(text)
    assert sum(bypassed.values()) == 5.0, bypassed
    assert bypassed.get("breaker_open", 0) >= 1  # the breaker stopped calling Redis
    assert health.status_code == 200
    doc = health.json()
    assert doc["status"] == "degraded" and doc["redis"] == "unavailable"
    assert "redis unavailable" in doc["reason"] and "not enforced" in doc["reason"]


def test_gateway_with_a_redis_that_never_answers(
    silent_port: int, sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(
        sqlite_url,
        fake[1],
        redis_url=f"redis://127.0.0.1:{silent_port}/0",
        rate_limit_rps=100,
        rate_limit_burst=100,
    ) as gw:
        with httpx.Client(timeout=30) as c:
            url = gw.v1 + "/chat/completions"
            codes = [c.post(url, json=chat_body(), headers=gw.auth()).status_code for _ in range(4)]
            doc = c.get(gw.url + "/healthz").json()
            text = c.get(gw.url + "/metrics").text
    assert codes == [200] * 4
    bypassed = _bypassed(text)
    assert bypassed.get("timeout", 0) >= 1 and sum(bypassed.values()) == 4.0, bypassed
    assert doc["status"] == "degraded" and "Timeout" in doc["reason"]


def test_breaker_closes_when_redis_returns(
    own_redis: OwnRedis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dexto.gateway")
    reasons: list[str] = []

    async def run() -> tuple[list[float], str | None, str | None, list[float]]:
        lim = RedisLimiter(
            own_redis.url,
            rate=0.01,
            burst=1,
            prefix=redis_prefix,
            breaker_failures=2,
            breaker_open_s=0.2,
            on_bypass=reasons.append,
        )
        try:
            own_redis.stop()
            down = [await lim.acquire("k") for _ in range(3)]
            degraded = await lim.health()
            own_redis.start()
            recovered = degraded
            for _ in range(100):  # bounded: until the half-open trial succeeds
                await asyncio.sleep(0.05)
                recovered = await lim.health()
                if recovered is None:
                    break
            enforced = [await lim.acquire("k2") for _ in range(2)]
            return down, degraded, recovered, enforced
        finally:
            await lim.close()

    down, degraded, recovered, enforced = asyncio.run(run())
    assert down == [0.0, 0.0, 0.0]
    assert reasons[:2] == ["error", "error"] and reasons[2] == "breaker_open"
    assert degraded is not None and "circuit breaker open" in degraded
    assert recovered is None
    assert enforced[0] == 0.0 and enforced[1] > 1  # Redis decides again: the bucket is empty
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rate limiter unavailable" in m for m in messages) == 1  # once, not per check
    assert sum("rate limiter recovered" in m for m in messages) == 1
