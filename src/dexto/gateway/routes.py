"""The non-hot endpoints: models, usage, health, metrics (device login: device_http.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dexto.gateway.accounts import hash_key, looks_like_key
from dexto.gateway.http_errors import error_body
from dexto.gateway.metrics import db_snapshot
from dexto.gateway.state import GatewayState
from dexto.gateway.usage import account_for_key, usage_report

__all__ = ["json_error", "make_routes"]


def json_error(status: int, code: str, message: str, type_: str) -> Response:
    return Response(error_body(code, message, type_), status, media_type="application/json")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status, media_type="application/json")


def make_routes(get_state: Callable[[], GatewayState]) -> list[Route]:
    async def models(request: Request) -> Response:
        raw = await get_state().catalog.get_raw()
        if raw is None:
            return json_error(
                502, "UPSTREAM_ERROR", "The model list is unavailable.", "upstream_error"
            )
        return Response(raw, media_type="application/json")

    async def me_usage(request: Request) -> Response:
        st = get_state()
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        account_id = (
            await st.runner.run(account_for_key, hash_key(token)) if looks_like_key(token) else None
        )
        if account_id is None:
            return json_error(
                401, "INVALID_API_KEY", "Invalid or revoked Dexto API key.", "invalid_request_error"
            )
        report = await st.runner.run(usage_report, account_id)
        if report is None:
            return json_error(401, "INVALID_API_KEY", "Unknown account.", "invalid_request_error")
        return _json(report)

    async def healthz(request: Request) -> Response:
        st = get_state()
        try:
            await st.runner.run(lambda c: c.one("SELECT 1"))
        except Exception:  # noqa: BLE001
            return _json({"status": "error", "db": "unreachable"}, 503)
        body: dict[str, Any] = {"status": "ok", "db": st.runner.db.dialect}
        body["models"] = st.catalog.loaded()
        if st.settings.redis_url:
            problem = await st.limiter.health()  # fail-open: degraded, still serving (200)
            body["redis"] = "unavailable" if problem else "ok"
            if problem:
                body.update(status="degraded", reason=problem)
        return _json(body)

    async def metrics(request: Request) -> Response:
        st = get_state()
        try:
            snap: dict[str, int] | None = await st.runner.run(db_snapshot)
        except Exception:  # noqa: BLE001
            snap = None
        return PlainTextResponse(
            st.metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/me/usage", me_usage, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

