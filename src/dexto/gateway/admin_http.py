"""Admin HTTP API (``/admin/…``), enabled only when an admin token is configured."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dexto.errors import ConfigError
from dexto.gateway import admin
from dexto.gateway.http_errors import HttpError
from dexto.gateway.money import parse_usd
from dexto.gateway.routes import json_error
from dexto.gateway.state import GatewayState
from dexto.gateway.validation import json_object_body, optional_amount, optional_str

__all__ = ["make_admin_routes"]

Handler = Callable[[Request], Awaitable[Response]]
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def make_admin_routes(get_state: Callable[[], GatewayState]) -> list[Route]:
    def guarded(fn: Callable[[Request, GatewayState], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            st = get_state()
            token = st.settings.admin_token
            if not token:
                return json_error(404, "NOT_FOUND", "Not found.", "invalid_request_error")
            auth = request.headers.get("authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), token.reveal().encode()):
                return json_error(
                    401, "INVALID_ADMIN_TOKEN", "Invalid admin token.", "invalid_request_error"
                )
            try:
                result = await fn(request, st)
            except ConfigError as exc:
                raise HttpError(400, exc.code, exc.message, fix=exc.fix) from None
            return Response(json.dumps(result), media_type="application/json")

        return endpoint

    async def run_sync(st: GatewayState, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await st.runner.run(fn, *args, **kw)

    async def create_account(request: Request, st: GatewayState) -> Any:
        doc = await json_object_body(request)
        credits = optional_amount(doc, "credits")
        micros = parse_usd(credits, field="credits", allow_zero=True) if credits is not None else 0
        password = optional_str(doc, "password")
        email = optional_str(doc, "email", max_len=320) or ""
        # scrypt is slow on purpose: hash off the event loop and off the database threads.
        pw_hash = await asyncio.to_thread(admin.check_and_hash_password, password)
        return await run_sync(
            st, admin.create_account, email, password_hash=pw_hash, credits_micros=micros
        )

    async def list_accounts(request: Request, st: GatewayState) -> Any:
        return {"accounts": await run_sync(st, admin.list_accounts)}

    async def add_credits(request: Request, st: GatewayState) -> Any:
        doc = await json_object_body(request)
        micros = parse_usd(optional_amount(doc, "usd") or "", field="usd")
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ConfigError(
                "the Idempotency-Key header must be 1-100 letters, digits or -_.:",
                field="Idempotency-Key",
                fix="Send a key such as a UUID (the same key again only to retry a top-up).",
            )
        reference = None if key is None else f"credit:{key}"
        return await run_sync(
            st, admin.add_credits, request.path_params["account"], micros, reference=reference
        )

    async def create_key(request: Request, st: GatewayState) -> Any:
        doc = await json_object_body(request)
        name = optional_str(doc, "name", max_len=200)
        return await run_sync(st, admin.create_key, request.path_params["account"], name=name)

    async def list_keys(request: Request, st: GatewayState) -> Any:
        return {"keys": await run_sync(st, admin.list_keys, request.path_params["account"])}

    async def revoke_key(request: Request, st: GatewayState) -> Any:
        return await run_sync(st, admin.revoke_key, request.path_params["key"])

    async def usage(request: Request, st: GatewayState) -> Any:
        return await run_sync(st, admin.usage, request.path_params["account"])

    return [
        Route("/admin/accounts", guarded(create_account), methods=["POST"]),
        Route("/admin/accounts", guarded(list_accounts), methods=["GET"]),
        Route("/admin/accounts/{account}/credits", guarded(add_credits), methods=["POST"]),
        Route("/admin/accounts/{account}/keys", guarded(create_key), methods=["POST"]),
        Route("/admin/accounts/{account}/keys", guarded(list_keys), methods=["GET"]),
        Route("/admin/accounts/{account}/usage", guarded(usage), methods=["GET"]),
        Route("/admin/keys/{key}/revoke", guarded(revoke_key), methods=["POST"]),
    ]
