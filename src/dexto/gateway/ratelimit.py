"""Per-key token buckets: in-process by default, shared through Redis (one Lua script) if set.

Redis failures fail open (rate limiting is not billing): each call has a short timeout and no
retry, and a circuit breaker stops calling Redis for ``breaker_open_s`` after
``breaker_failures`` consecutive failures, then lets one trial call through. Every skipped check
is reported to ``on_bypass(reason)``; ``health()`` names the problem while it lasts.

The Redis limiter is local-first: one call leases up to ``lease_max`` tokens from the shared
bucket (never more than half of what the bucket holds, and at least one), and the worker spends
them locally without calling Redis again. One lease per key is in flight per worker at a time;
requests arriving meanwhile queue for a share of it, in order, and the first left without a
token leads the next lease; spending the last leased token starts the next lease (of
``lease_max - 1``) in the background. A refusal is remembered locally until the wait Redis named
has passed (and answers the queued requests too). Over any interval of
``T`` seconds, the requests admitted for one key across ``N`` worker processes (all hosts) are at
most ``burst + rate * T + N * (lease_max - 1)`` (each worker holds at most ``lease_max - 1``
unspent leased tokens); ``lease_max = 1`` is one Redis call per request and no excess.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from dexto.gateway.logs import get_logger, log_event

__all__ = ["LocalLimiter", "RateLimiter", "RedisLimiter", "make_limiter"]


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else seconds until one is available."""
        ...

    async def health(self) -> str | None:
        """None when healthy, else why checks are being skipped."""
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

    async def health(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
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
local got = 0
if tokens >= 1 then
  got = math.max(1, math.min(want, math.floor(tokens / 2)))
  tokens = tokens - got
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(got) .. ' ' .. tostring(wait)
"""


class RedisLimiter:
    """All workers share one bucket per key; the refill clock is Redis's own ``TIME``."""

    def __init__(
        self,
        url: str,
        rate: float,
        burst: int,
        *,
        prefix: str = "dexto:gw:",
        timeout_s: float = 0.05,
        breaker_failures: int = 3,
        breaker_open_s: float = 5.0,
        lease_max: int = 8,
        max_keys: int = 100_000,
        on_bypass: Callable[[str], None] | None = None,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.rate = rate
        self.burst = max(1, burst)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._client: Any = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._script: Any = self._client.register_script(_LUA)
        self._log = get_logger()
        self._on_bypass = on_bypass
        self._breaker_failures = max(1, breaker_failures)
        self._breaker_open_s = breaker_open_s
        self._failures = 0  # consecutive
        self._open_until = 0.0  # breaker open (calls skipped) until this monotonic time
        self._trial = False  # a half-open trial call is in flight
        self._last_error: str | None = None
        self.lease_max = max(1, lease_max)
        self._max_keys = max_keys
        self._held: dict[str, int] = {}  # key -> leased tokens not yet spent
        self._denied: dict[str, float] = {}  # key -> monotonic time until which Redis said no
        # key -> requests waiting for the lease in flight (present while one is in flight)
        self._queues: dict[str, deque[asyncio.Future[tuple[str, float]]]] = {}
        self._refills: set[asyncio.Task[None]] = set()  # background leases (see _refill)

    def _bypass(self, reason: str) -> float:
        if self._on_bypass is not None:
            self._on_bypass(reason)
        return 0.0

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one Redis call through the breaker; raises ``_Skipped`` when it is open."""
        now = time.monotonic()
        trial = False
        if self._failures >= self._breaker_failures:
            if now < self._open_until or self._trial:
                raise _Skipped("breaker_open")
            trial = self._trial = True  # half-open: this call decides
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                result = await fn()
        except Exception as exc:  # noqa: BLE001 - every Redis failure fails open
            timed_out = isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
            self._failed(type(exc).__name__)
            raise _Skipped("timeout" if timed_out else "error") from None
        finally:
            if trial:
                self._trial = False
        if self._failures:
            if self._failures >= self._breaker_failures:
                log_event(self._log, "rate limiter recovered: Redis answers again")
            self._failures = 0
            self._last_error = None
        return result

    def _failed(self, error: str) -> None:
        self._failures += 1
        self._last_error = error
        if self._failures >= self._breaker_failures:
            if self._failures == self._breaker_failures:
                log_event(
                    self._log,
                    "rate limiter unavailable: Redis failed, limits not enforced (fail-open)",
                    30,
                    error=error,
                )
            self._open_until = time.monotonic() + self._breaker_open_s

    async def acquire(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        if self.lease_max == 1:  # nothing is held locally: every request asks Redis
            try:
                got, wait = await self._lease(key)
            except _Skipped as skip:
                return self._bypass(skip.reason)
            return 0.0 if got else wait
        held = self._held.get(key, 0)
        if held > 0:
            self._held[key] = held - 1
            if held == 1 and key not in self._queues:
                self._refill(key)  # the next request finds tokens, not a Redis round trip
            return 0.0
        now = time.monotonic()
        until = self._denied.get(key, 0.0)
        if until > now:
            return until - now
        queue = self._queues.get(key)
        if queue is not None:  # a lease is in flight for this key: wait for a share of it
            turn: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
            queue.append(turn)
            try:
                kind, value = await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled() and turn.result()[0] == "lease":
                    self._hand_over(key, queue, ("lease", 0.0))  # chosen to lead, but gone
                raise
            if kind == "token":
                return 0.0
            if kind == "denied":
                return value
            if kind != "lease":
                return self._bypass(kind)
        else:
            queue = self._queues[key] = deque()
        return await self._lead(key, queue)

    async def _lead(self, key: str, queue: deque[asyncio.Future[tuple[str, float]]]) -> float:
        """Lease for ``key`` and share the tokens with the requests queued meanwhile (in order);
        the first request left without a token leads the next lease."""
        outcome: tuple[str, float] = ("lease", 0.0)
        try:
            got, wait = await self._lease(key)
            if got > 0:
                spare = got - 1
                while spare and queue:
                    turn = queue.popleft()
                    if not turn.done():
                        turn.set_result(("token", 0.0))
                        spare -= 1
                if spare:
                    self._held[key] = self._held.get(key, 0) + spare
                self._denied.pop(key, None)
                return 0.0
            self._denied[key] = time.monotonic() + wait
            outcome = ("denied", wait)
            return wait
        except _Skipped as skip:
            outcome = (skip.reason, 0.0)
            return self._bypass(skip.reason)
        finally:  # also on cancellation: the queue is never left without a leader
            self._hand_over(key, queue, outcome)

    def _refill(self, key: str) -> None:
        """Lease up to ``lease_max - 1`` tokens for ``key`` in the background (so a worker still
        holds at most ``lease_max - 1``); requests arriving meanwhile queue for them as for a
        lease led by a request, and share a refusal or a failure (each counts its own bypass)."""
        queue: deque[asyncio.Future[tuple[str, float]]] = deque()
        self._queues[key] = queue
        task = asyncio.get_running_loop().create_task(self._refill_lease(key, queue))
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill_lease(
        self, key: str, queue: deque[asyncio.Future[tuple[str, float]]]
    ) -> None:
        outcome: tuple[str, float] = ("lease", 0.0)
        try:
            got, wait = await self._lease(key, self.lease_max - 1)
            if got > 0:
                while got and queue:
                    turn = queue.popleft()
                    if not turn.done():
                        turn.set_result(("token", 0.0))
                        got -= 1
                if got:
                    self._held[key] = self._held.get(key, 0) + got
                self._denied.pop(key, None)
            else:
                self._denied[key] = time.monotonic() + wait
                outcome = ("denied", wait)
        except _Skipped as skip:
            outcome = (skip.reason, 0.0)
        finally:
            self._hand_over(key, queue, outcome)

    def _hand_over(
        self, key: str, queue: deque[asyncio.Future[tuple[str, float]]], outcome: tuple[str, float]
    ) -> None:
        if outcome[0] != "lease":  # refused or skipped: every queued request shares the outcome
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(outcome)
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(("lease", 0.0))  # this request leads the next lease
                return
        del self._queues[key]
        if len(self._held) > self._max_keys or len(self._denied) > self._max_keys:
            self._held.clear()  # unspent tokens are dropped: fewer admissions, never more
            self._denied.clear()

    async def _lease(self, key: str, want: int = 0) -> tuple[int, float]:
        """One script call: (tokens leased — up to ``want``, default ``lease_max`` — wait)."""
        raw = await self._call(
            lambda: self._script(
                keys=[f"{self.prefix}rl:{key}"],
                args=[self.rate, self.burst, want or self.lease_max],
            )
        )
        got, wait = (raw.decode() if isinstance(raw, bytes) else str(raw)).split()
        return int(float(got)), float(wait)

    async def health(self) -> str | None:
        """Pings Redis (through the breaker) and names the failure, if any."""
        try:
            await self._call(self._client.ping)
        except _Skipped as skip:
            state = {"breaker_open": "circuit breaker open", "timeout": "timed out"}.get(
                skip.reason, "failed"
            )
            return (
                f"redis unavailable ({self._last_error or 'error'}, {state}); "
                "rate limits are not enforced"
            )
        return None

    async def close(self) -> None:
        for task in list(self._refills):
            task.cancel()
        if self._refills:
            await asyncio.wait(set(self._refills))
        await self._client.aclose()


class _Skipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_limiter(
    redis_url: str | None,
    rate: float,
    burst: int,
    *,
    prefix: str = "dexto:gw:",
    lease_max: int = 8,
    on_bypass: Callable[[str], None] | None = None,
) -> RateLimiter:
    if redis_url:
        return RedisLimiter(
            redis_url, rate, burst, prefix=prefix, lease_max=lease_max, on_bypass=on_bypass
        )
    return LocalLimiter(rate, burst)
