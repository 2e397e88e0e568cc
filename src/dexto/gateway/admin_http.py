"""Admin HTTP API (``/admin/…``), enabled only when an admin token is configured."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dexto.errors import ConfigError
from dexto.gateway import admin
from dexto.gateway.money import parse_usd
from dexto.gateway.routes import json_error
from dexto.gateway.state import GatewayState

__all__ = ["make_admin_routes"]

Handler = Callable[[Request], Awaitable[Response]]


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
                return json_error(400, exc.code, exc.message, "invalid_request_error")
            return Response(json.dumps(result), media_type="application/json")

        return endpoint

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ConfigError("the body is not valid JSON", fix="Send a JSON object.") from None
        if not isinstance(doc, dict):
            raise ConfigError("the body must be a JSON object", fix="Send a JSON object.")
        return doc

    async def run_sync(st: GatewayState, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await st.runner.run(fn, *args, **kw)

    async def create_account(request: Request, st: GatewayState) -> Any:
        doc = await body(request)
        credits = doc.get("credits")
        micros = (
            parse_usd(str(credits), field="credits", allow_zero=True) if credits is not None else 0
        )
        password = doc.get("password")
        return await run_sync(
            st,
            admin.create_account,
            str(doc.get("email", "")),
            password=str(password) if password is not None else None,
            credits_micros=micros,
        )

    async def list_accounts(request: Request, st: GatewayState) -> Any:
        return {"accounts": await run_sync(st, admin.list_accounts)}

    async def add_credits(request: Request, st: GatewayState) -> Any:
        doc = await body(request)
        micros = parse_usd(str(doc.get("usd", "")), field="usd")
        return await run_sync(st, admin.add_credits, request.path_params["account"], micros)

    async def create_key(request: Request, st: GatewayState) -> Any:
        doc = await body(request)
        name = doc.get("name")
        return await run_sync(
            st, admin.create_key, request.path_params["account"], name=str(name) if name else None
        )

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
