"""The upstream (OpenRouter-compatible) HTTP client and the cached model list with prices."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from dexto.gateway.logs import get_logger, log_event
from dexto.gateway.pricing import ModelPrice, parse_price
from dexto.gateway.settings import GatewaySettings
from dexto.gateway.upstream_http import HttpClient, UpstreamError, UpstreamResponse

__all__ = ["ModelCatalog", "Upstream"]


class Upstream:
    """The upstream origin; the upstream key is added here and nowhere else."""

    def __init__(self, settings: GatewaySettings) -> None:
        headers: dict[str, str] = {}
        if settings.upstream_key:
            headers["Authorization"] = f"Bearer {settings.upstream_key.reveal()}"
        self.client = HttpClient(
            settings.upstream_url,
            connect_timeout=settings.upstream_connect_timeout_s,
            read_timeout=settings.upstream_timeout_s,
            headers=headers,
        )

    async def open_chat(self, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """Send the request; return as soon as the response headers arrive (body not read)."""
        return await self.client.request(
            "POST", "chat/completions", body, {"Content-Type": "application/json", **headers}
        )

    async def get_models(self) -> bytes:
        resp = await self.client.request("GET", "models")
        try:
            data = await resp.aread()
        finally:
            await resp.aclose()
        if resp.status_code != 200:
            raise UpstreamError(f"the model list answered HTTP {resp.status_code}")
        return data

    async def aclose(self) -> None:
        await self.client.aclose()


class ModelCatalog:
    """The upstream model list, cached with a TTL; stale data is served while refreshing."""

    def __init__(self, upstream: Upstream, ttl_s: float) -> None:
        self._upstream = upstream
        self._ttl = ttl_s
        self.raw: bytes | None = None
        self._prices: dict[str, ModelPrice] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[None] | None = None

    @property
    def fresh(self) -> bool:
        return self.raw is not None and time.monotonic() - self._fetched_at < self._ttl

    async def refresh(self) -> None:
        async with self._lock:
            if self.fresh:
                return
            raw = await self._upstream.get_models()
            data = json.loads(raw)
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise ValueError("upstream model list has no data array")
            prices: dict[str, ModelPrice] = {}
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    price = parse_price(entry)
                    if price is not None:
                        prices[entry["id"]] = price
            self.raw, self._prices, self._fetched_at = raw, prices, time.monotonic()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - pricing falls back; never fail a request here
            log_event(get_logger(), "model list refresh failed", 30, error=type(exc).__name__)

    def _kick(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh_quietly())

    async def get_raw(self) -> bytes | None:
        if self.raw is None:
            await self._refresh_quietly()
        elif not self.fresh:
            self._kick()
        return self.raw

    async def price(self, model: str, *, wait_s: float = 5.0) -> ModelPrice | None:
        if self.raw is None:
            try:
                await asyncio.wait_for(self._refresh_quietly(), wait_s)
            except TimeoutError:
                return None
        elif not self.fresh:
            self._kick()
        return self._prices.get(model)

    async def aclose(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            try:
                await self._refreshing
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def loaded(self) -> dict[str, Any]:
        return {"models": len(self._prices), "fresh": self.fresh}
