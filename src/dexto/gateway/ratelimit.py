"""Per-key token buckets: in-process by default, shared through Redis (one Lua script) if set."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from dexto.gateway.logs import get_logger, log_event

__all__ = ["LocalLimiter", "RateLimiter", "RedisLimiter", "make_limiter"]


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else seconds until one is available."""
        ...

    async def close(self) -> None: ...


class LocalLimiter:
    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    async def acquire(self, key: str) -> float:
        return self.take(key, time.monotonic())

    def take(self, key: str, now: float) -> float:
        if self.rate <= 0:
            return 0.0
        tokens, ts = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - ts) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    async def close(self) -> None:
        return None


_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisLimiter:
    """All workers share one bucket per key; the refill clock is Redis's own ``TIME``."""

    def __init__(self, url: str, rate: float, burst: int, *, prefix: str = "dexto:gw:") -> None:
        import redis.asyncio as aioredis

        self.rate = rate
        self.burst = max(1, burst)
        self.prefix = prefix
        self._client: Any = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._script: Any = self._client.register_script(_LUA)
        self._log = get_logger()

    async def acquire(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        try:
            raw = await self._script(keys=[f"{self.prefix}rl:{key}"], args=[self.rate, self.burst])
        except Exception as exc:  # noqa: BLE001 - fail open: rate limiting is not billing
            log_event(self._log, "rate limiter unavailable", 30, error=type(exc).__name__)
            return 0.0
        return float(raw.decode() if isinstance(raw, bytes) else raw)

    async def close(self) -> None:
        await self._client.aclose()


def make_limiter(
    redis_url: str | None, rate: float, burst: int, *, prefix: str = "dexto:gw:"
) -> RateLimiter:
    if redis_url:
        return RedisLimiter(redis_url, rate, burst, prefix=prefix)
    return LocalLimiter(rate, burst)
