"""App wiring: ``create_app(settings)`` builds the ASGI app; the lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from dexto.gateway import throttle
from dexto.gateway.asgi import Receive, Scope, Send
from dexto.gateway.db import Database, redact_url
from dexto.gateway.guard import ErrorGuard
from dexto.gateway.http_errors import error_body
from dexto.gateway.logs import configure_logging, get_logger, log_event
from dexto.gateway.metrics import Metrics
from dexto.gateway.migrations import migrate
from dexto.gateway.pg_vacuum import HoldsVacuum, run_holds_vacuum
from dexto.gateway.proxy import ChatCompletions
from dexto.gateway.ratelimit import make_limiter
from dexto.gateway.responses import ResponsesEndpoint
from dexto.gateway.routes import json_error, make_routes
from dexto.gateway.runner import DbRunner
from dexto.gateway.settings import GatewaySettings
from dexto.gateway.state import GatewayState
from dexto.gateway.sweeper import run_sweeper
from dexto.gateway.upstream import ModelCatalog, Upstream

__all__ = ["SERVED_ENDPOINTS", "GatewayApp", "create_app", "create_app_from_env"]

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_RESPONSES_PATHS = frozenset({"/v1/responses", "/responses"})
_OPENROUTER_PREFIX = "/api/v1/"
_UNVERSIONED = ("me/", "healthz", "metrics", "auth/device/", "device")
SERVED_ENDPOINTS = (
    "POST /v1/chat/completions",
    "POST /v1/responses",
    "GET /v1/models",
    "GET /v1/models/{id}",
    "GET /v1/credits",
    "GET /v1/key",
    "GET /me/usage",
    "GET /healthz",
    "GET /metrics",
    "POST /auth/device/code",
    "POST /auth/device/token",
    "GET /device",
)


class GatewayApp:
    """ASGI app: the chat hot path is dispatched directly; everything else goes to Starlette."""

    def __init__(self, settings: GatewaySettings, **overrides: Any) -> None:
        self.settings = settings
        self._overrides = overrides  # test seams, e.g. upstream_transport
        self._state: GatewayState | None = None
        self._chat: ErrorGuard | None = None
        self.chat_handler: ChatCompletions | None = None  # the unguarded handler (run_chat)
        self._responses: ErrorGuard | None = None
        from dexto.gateway.admin_http import make_admin_routes
        from dexto.gateway.device_http import make_device_routes
        from dexto.gateway.openapi import openapi_route

        self.starlette = Starlette(
            routes=[
                *make_routes(self.state),
                *make_device_routes(self.state),
                *make_admin_routes(self.state),
                openapi_route(),
            ],
            lifespan=self._lifespan,
            exception_handlers={404: _not_found, 405: _not_allowed},
            middleware=[Middleware(ErrorGuard, get_state=self.state)],
        )

    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("the gateway is not started (lifespan has not run)")
        return self._state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_OPENROUTER_PREFIX):
            # OpenRouter base URLs (…/api/v1) work unchanged: /api/v1/X is /v1/X, or /X for
            # the endpoints outside /v1 (/api/v1/me/usage is /me/usage).
            rest = scope["path"][len(_OPENROUTER_PREFIX) :]
            path = ("/" if rest.startswith(_UNVERSIONED) else "/v1/") + rest
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if scope["type"] == "http" and scope["path"] in _CHAT_PATHS and self._chat is not None:
            await self._chat(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] in _RESPONSES_PATHS and self._responses:
            await self._responses(scope, receive, send)
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
        runner = DbRunner(db, pool_size=s.db_pool_size, log=log)
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
        chat = self.chat_handler = ChatCompletions(state)
        self._chat = ErrorGuard(chat, self.state)
        tasks = [
            asyncio.create_task(run_sweeper(state)),
            asyncio.create_task(throttle.sweeper(state)),
            asyncio.create_task(state.catalog.get_raw()),
        ]
        if runner.pg is not None:
            tasks.append(asyncio.create_task(run_holds_vacuum(HoldsVacuum(runner.pg, log))))
        log_event(log, "gateway started", db=redact_url(s.db_url))
        # /v1/responses runs through the same chat handler (translation, see responses.py).
        self._responses = ErrorGuard(ResponsesEndpoint(chat, s.max_body_bytes), self.state)
        # What start-up built lives as long as the gateway: out of the collector's way, so that
        # a full (oldest-generation) collection does not walk it on the request path.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            self._responses = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await chat.drain()  # settlements in flight (incl. cancelled streams) finish
            self._chat = self.chat_handler = None
            await state.catalog.aclose()
            await upstream.aclose()
            await state.limiter.close()
            await runner.aclose()
            runner.close()
            self._state = None


async def _not_found(request: Request, exc: Exception) -> Response:
    body = error_body(
        "NOT_FOUND",
        f"No endpoint {request.method} {request.url.path[:200]}. Served: "
        + ", ".join(SERVED_ENDPOINTS)
        + " (each also under /api/v1/…: /api/v1/X is /v1/X, or /X outside /v1).",
        "invalid_request_error",
        endpoints=list(SERVED_ENDPOINTS),
    )
    return Response(body, 404, media_type="application/json")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return json_error(405, "METHOD_NOT_ALLOWED", "Method not allowed.", "invalid_request_error")


def create_app(settings: GatewaySettings, **overrides: Any) -> GatewayApp:
    """Build the gateway ASGI app from one settings object (no globals)."""
    return GatewayApp(settings, **overrides)


def create_app_from_env() -> GatewayApp:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment."""
    return create_app(GatewaySettings.resolve())
