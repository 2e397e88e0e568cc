"""The non-hot endpoints: models, usage, health, metrics, device login."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from dexto.gateway import device
from dexto.gateway.accounts import hash_key, looks_like_key
from dexto.gateway.http_errors import error_body
from dexto.gateway.logs import log_event
from dexto.gateway.metrics import db_snapshot
from dexto.gateway.state import GatewayState
from dexto.gateway.usage import account_for_key, usage_report

_log = logging.getLogger("dexto.gateway")

__all__ = ["json_error", "make_routes"]

_SECURE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
}


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
        except Exception as exc:  # noqa: BLE001
            log_event(_log, "healthz: database unreachable", logging.WARNING,
                      error=type(exc).__name__, detail=str(exc)[:300])
            return _json({"status": "error", "db": "unreachable"}, 503)
        return _json({"status": "ok", "db": st.runner.db.dialect, "models": st.catalog.loaded()})

    async def metrics(request: Request) -> Response:
        st = get_state()
        try:
            snap: dict[str, int] | None = await st.runner.run(db_snapshot)
        except Exception as exc:  # noqa: BLE001
            log_event(_log, "metrics: database snapshot failed", logging.WARNING,
                      error=type(exc).__name__, detail=str(exc)[:300])
            snap = None
        return PlainTextResponse(
            st.metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def device_code(request: Request) -> Response:
        st = get_state()
        base = st.settings.public_url or str(request.base_url).rstrip("/")
        return _json(await st.runner.run(device.create_code, base))

    async def device_token(request: Request) -> Response:
        st = get_state()
        raw = await request.body()
        code = ""
        ctype = request.headers.get("content-type", "")
        try:
            if ctype.startswith("application/json"):
                doc = json.loads(raw)
                code = str(doc.get("device_code", "")) if isinstance(doc, dict) else ""
            else:
                code = parse_qs(raw.decode("utf-8")).get("device_code", [""])[0]
        except (ValueError, UnicodeDecodeError):
            return json_error(400, "INVALID_REQUEST", "Malformed body.", "invalid_request_error")
        if not code or len(code) > 200:
            return json_error(
                400, "INVALID_REQUEST", "device_code is required.", "invalid_request_error"
            )
        status, result = await st.runner.run(device.consume, code)
        if status == "ok":
            return _json(result)
        messages = {
            "AUTHORIZATION_PENDING": "Waiting for approval in the browser.",
            "SLOW_DOWN": "Polling too fast; wait the interval between polls.",
            "ACCESS_DENIED": "The login was denied.",
            "EXPIRED_TOKEN": "The code expired; start `dexto login` again.",
            "INVALID_GRANT": "Unknown or already used device code.",
        }
        return json_error(400, status, messages[status], status.lower())

    async def device_page(request: Request) -> Response:
        if request.method == "GET":
            code = request.query_params.get("user_code", "")[:20]
            return HTMLResponse(device.render_page(code), headers=_SECURE_HEADERS)
        raw = await request.body()
        if len(raw) > 10_000:
            return HTMLResponse(
                device.render_page("", "Request too large."), 413, headers=_SECURE_HEADERS
            )
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        user_code = form.get("user_code", "")[:20]
        deny = form.get("action") == "deny"
        outcome = await asyncio.to_thread(
            _approve_in_thread,
            get_state(),
            user_code,
            form.get("email", "")[:320],
            form.get("password", "")[:1000],
            deny,
        )
        text, status = {
            "approved": ("Approved. You can close this page and return to your terminal.", 200),
            "denied": ("Denied. The terminal will not be logged in.", 200),
            "bad_credentials": ("Wrong email or password.", 401),
            "locked": ("Too many failed attempts; start `dexto login` again.", 403),
            "unknown_code": ("Unknown or expired code; check the terminal.", 404),
        }[outcome]
        return HTMLResponse(
            device.render_page(user_code if status >= 400 else "", text),
            status,
            headers=_SECURE_HEADERS,
        )

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/me/usage", me_usage, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/auth/device/code", device_code, methods=["POST"]),
        Route("/auth/device/token", device_token, methods=["POST"]),
        Route("/device", device_page, methods=["GET", "POST"]),
    ]


def _approve_in_thread(st: GatewayState, user_code: str, email: str, pw: str, deny: bool) -> str:
    # scrypt is slow on purpose: run it (and its own connection) off the event loop.
    conn = st.runner.db.connect()
    try:
        return device.approve(conn, user_code, email, pw, deny=deny)
    finally:
        st.runner.db.forget(conn)
