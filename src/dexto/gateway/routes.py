"""The non-hot endpoints: models, usage, health, metrics (device login: device_http.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dexto.gateway import openapi
from dexto.gateway.accounts import hash_key, looks_like_key
from dexto.gateway.db import Conn
from dexto.gateway.http_errors import error_body
from dexto.gateway.logs import log_event
from dexto.gateway.metrics import db_snapshot
from dexto.gateway.openrouter_account import credits_doc, key_doc
from dexto.gateway.state import GatewayState
from dexto.gateway.usage import account_for_key, usage_report

_log = logging.getLogger("dexto.gateway")

__all__ = ["find_model", "json_error", "make_routes"]


def json_error(status: int, code: str, message: str, type_: str) -> Response:
    return Response(error_body(code, message, type_), status, media_type="application/json")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status, media_type="application/json")


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _bad_key() -> Response:
    return json_error(
        401, "INVALID_API_KEY", "Invalid or revoked Dexto API key.", "invalid_request_error"
    )


def find_model(raw: bytes, model_id: str) -> dict[str, Any] | None:
    """The cached model list's entry with this ``id``, OpenAI's ``object``/``owned_by`` added."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    entries = doc.get("data") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model_id:
            owner = model_id.split("/", 1)[0] if "/" in model_id else "dexto"
            return {"object": "model", "owned_by": owner, **entry}
    return None


def _ping(conn: Conn) -> None:
    """One trivial read in its own snapshot (closed at once on both drivers)."""
    with conn.read():
        conn.one("SELECT 1")


def make_routes(get_state: Callable[[], GatewayState]) -> list[Route]:
    async def models(request: Request) -> Response:
        raw = await get_state().catalog.get_raw()
        if raw is None:
            return json_error(
                502, "UPSTREAM_ERROR", "The model list is unavailable.", "upstream_error"
            )
        return Response(raw, media_type="application/json")

    async def model(request: Request) -> Response:
        model_id = str(request.path_params["model_id"])
        raw = await get_state().catalog.get_raw()
        if raw is None:
            return json_error(
                502, "UPSTREAM_ERROR", "The model list is unavailable.", "upstream_error"
            )
        entry = find_model(raw, model_id)
        if entry is None:
            return json_error(
                404,
                "MODEL_NOT_FOUND",
                f"No model {model_id[:200]!r}; GET /v1/models lists the served IDs.",
                "invalid_request_error",
            )
        return _json(entry)

    async def _account(request: Request) -> str | None:
        token = _bearer(request)
        if not looks_like_key(token):
            return None
        return await get_state().runner.run(account_for_key, hash_key(token))

    async def credits(request: Request) -> Response:
        account_id = await _account(request)
        if account_id is None:
            return _bad_key()
        return _json(await get_state().runner.run(credits_doc, account_id))

    async def key(request: Request) -> Response:
        st = get_state()
        token = _bearer(request)
        rate = (st.settings.rate_limit_rps, float(st.settings.rate_limit_burst))
        doc = await st.runner.run(key_doc, hash_key(token), rate) if looks_like_key(token) else None
        return _bad_key() if doc is None else _json(doc)

    async def me_usage(request: Request) -> Response:
        st = get_state()
        account_id = await _account(request)
        if account_id is None:
            return _bad_key()
        report = await st.runner.run(usage_report, account_id)
        if report is None:
            return json_error(401, "INVALID_API_KEY", "Unknown account.", "invalid_request_error")
        return _json(report)

    async def healthz(request: Request) -> Response:
        st = get_state()
        try:
            await st.runner.run(_ping)
        except Exception as exc:  # noqa: BLE001
            log_event(
                _log,
                "healthz: database unreachable",
                logging.WARNING,
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )
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
        except Exception as exc:  # noqa: BLE001
            log_event(
                _log,
                "metrics: database snapshot failed",
                logging.WARNING,
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )
            snap = None
        return PlainTextResponse(
            st.metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/v1/credits", credits, methods=["GET"]),
        Route("/v1/key", key, methods=["GET"]),
        Route("/v1/auth/key", key, methods=["GET"]),
        Route("/me/usage", me_usage, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _register_openapi() -> None:
    num = {"type": "number"}
    nnum = {"type": "number", "nullable": True}
    string = {"type": "string"}
    boolean = {"type": "boolean"}
    openapi.register(
        "/v1/models/{model_id}",
        "get",
        {
            "summary": "One entry of the model list (the ID may contain '/')",
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": string}],
            "responses": {
                "200": openapi.json_response(
                    "The model, with OpenAI's object and owned_by",
                    {
                        "type": "object",
                        "required": ["id", "object", "owned_by"],
                        "properties": {
                            "id": string,
                            "object": {"type": "string", "enum": ["model"]},
                            "owned_by": string,
                        },
                    },
                ),
                **openapi.errors(404, 502),
            },
        },
    )
    credits = {
        "type": "object",
        "required": ["total_credits", "total_usage"],
        "properties": {"total_credits": num, "total_usage": num},
    }
    openapi.register(
        "/v1/credits",
        "get",
        {
            "summary": "OpenRouter-shaped credits of the key's account (USD)",
            "security": openapi.USER_KEY,
            "responses": {
                "200": openapi.json_response(
                    "Credits granted and used",
                    {"type": "object", "required": ["data"], "properties": {"data": credits}},
                ),
                **openapi.errors(401),
            },
        },
    )
    usd_fields = ("usage", "usage_daily", "usage_weekly", "usage_monthly")
    byok_fields = tuple("byok_" + f for f in usd_fields)
    key_props: dict[str, Any] = {
        "label": string,
        "limit": nnum,
        "limit_remaining": nnum,
        "limit_reset": {"type": "string", "nullable": True},
        "include_byok_in_limit": boolean,
        **{f: num for f in usd_fields + byok_fields},
        "is_free_tier": boolean,
        "is_provisioning_key": boolean,
        "is_management_key": boolean,
        "expires_at": {"type": "string", "nullable": True},
        "rate_limit": {
            "type": "object",
            "required": ["requests", "interval"],
            "properties": {"requests": {"type": "integer"}, "interval": string, "note": string},
        },
    }
    key_op = {
        "summary": "OpenRouter-shaped information on the calling key (limit = credits granted)",
        "security": openapi.USER_KEY,
        "responses": {
            "200": openapi.json_response(
                "The key",
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {
                            "type": "object",
                            "required": list(key_props),
                            "properties": key_props,
                        }
                    },
                },
            ),
            **openapi.errors(401),
        },
    }
    openapi.register("/v1/key", "get", key_op)
    openapi.register("/v1/auth/key", "get", key_op)
    health = {
        "type": "object",
        "required": ["status", "db"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "error"]},
            "db": string,
            "models": {"type": "object"},
            "redis": {"type": "string", "enum": ["ok", "unavailable"]},
            "reason": string,
        },
    }
    openapi.register(
        "/healthz",
        "get",
        {
            "summary": "Liveness: the database answers (degraded: Redis down, still serving)",
            "responses": {
                "200": openapi.json_response("ok or degraded", health),
                "503": openapi.json_response("The database is unreachable", health),
            },
        },
    )
    openapi.register(
        "/metrics",
        "get",
        {
            "summary": "Prometheus metrics (text exposition format 0.0.4)",
            "responses": {
                "200": {"description": "Metrics", "content": {"text/plain": {"schema": string}}}
            },
        },
    )


_register_openapi()
