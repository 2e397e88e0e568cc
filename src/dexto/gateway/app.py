"""App wiring: ``create_app(settings)`` builds the ASGI app; the lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from dexto.gateway import ledger
from dexto.gateway.asgi import Receive, Scope, Send
from dexto.gateway.db import Database, redact_url
from dexto.gateway.logs import configure_logging, get_logger, log_event
from dexto.gateway.metrics import Metrics
from dexto.gateway.migrations import migrate
from dexto.gateway.proxy import ChatCompletions
from dexto.gateway.ratelimit import make_limiter
from dexto.gateway.routes import json_error, make_routes
from dexto.gateway.runner import DbRunner
from dexto.gateway.settings import GatewaySettings
from dexto.gateway.state import GatewayState
from dexto.gateway.upstream import ModelCatalog, Upstream

__all__ = ["GatewayApp", "create_app", "create_app_from_env"]

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class GatewayApp:
    """ASGI app: the chat hot path is dispatched directly; everything else goes to Starlette."""

    def __init__(self, settings: GatewaySettings, **overrides: Any) -> None:
        self.settings = settings
        self._overrides = overrides  # test seams, e.g. upstream_transport
        self._state: GatewayState | None = None
        self._chat: ChatCompletions | None = None
        from dexto.gateway.admin_http import make_admin_routes

        self.starlette = Starlette(
            routes=[*make_routes(self.state), *make_admin_routes(self.state)],
            lifespan=self._lifespan,
            exception_handlers={404: _not_found, 405: _not_allowed},
        )

    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("the gateway is not started (lifespan has not run)")
        return self._state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in _CHAT_PATHS and self._chat is not None:
            await self._chat(scope, receive, send)
            return
        if scope["type"] == "http" and self._state is not None:
            await self._state.metrics.observe(self.starlette, scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        s = self.settings
        configure_logging(s.log_level, access_sample=s.access_log_sample)
        log = get_logger()
        db = Database(s.db_url)
        if s.auto_migrate:
            await asyncio.to_thread(migrate, db)
        runner = DbRunner(db, pool_size=s.db_pool_size)
        upstream = Upstream(s)
        metrics = Metrics()
        state = GatewayState(
            settings=s,
            runner=runner,
            upstream=upstream,
            catalog=ModelCatalog(upstream, s.models_ttl_s),
            limiter=make_limiter(
                s.redis_url,
                s.rate_limit_rps,
                s.rate_limit_burst,
                prefix=s.redis_prefix,
                lease_max=s.redis_lease_max,
                on_bypass=lambda reason: metrics.inc("ratelimit_bypassed_total", reason=reason),
            ),
            log=log,
            metrics=metrics,
        )
        self._state = state
        self._chat = ChatCompletions(state)
        tasks = [
            asyncio.create_task(_sweeper(state)),
            asyncio.create_task(state.catalog.get_raw()),
        ]
        log_event(log, "gateway started", db=redact_url(s.db_url))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._chat = None
            await state.catalog.aclose()
            await upstream.aclose()
            await state.limiter.close()
            runner.close()
            self._state = None


async def _sweeper(state: GatewayState) -> None:
    """Delete expired holds (they already stopped counting at expiry; this keeps tables small)."""
    while True:
        await asyncio.sleep(state.settings.sweep_interval_s)
        try:
            n = await state.runner.run(ledger.sweep_expired)
        except Exception as exc:  # noqa: BLE001 - keep sweeping after a transient DB error
            log_event(state.log, "hold sweep failed", 30, error=type(exc).__name__)
            continue
        if n:
            state.metrics.inc("holds_expired_total", n)
            log_event(state.log, "expired holds swept", count=n)


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_error(404, "NOT_FOUND", "Not found.", "invalid_request_error")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return json_error(405, "METHOD_NOT_ALLOWED", "Method not allowed.", "invalid_request_error")


def create_app(settings: GatewaySettings, **overrides: Any) -> GatewayApp:
    """Build the gateway ASGI app from one settings object (no globals)."""
    return GatewayApp(settings, **overrides)


def create_app_from_env() -> GatewayApp:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment."""
    return create_app(GatewaySettings.resolve())
