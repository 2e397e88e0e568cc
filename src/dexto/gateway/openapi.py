"""The gateway's OpenAPI 3.0 document, served at ``GET /openapi.json``.

Operations live in one registry, :data:`OPERATIONS` (``(path, method) → operation object``),
filled by :func:`register`. A new endpoint adds one entry next to its handler's module, e.g.::

    from dexto.gateway import openapi
    openapi.register("/v1/responses", "post", {
        "summary": "…", "security": openapi.USER_KEY,
        "requestBody": openapi.json_body({"type": "object", …}),
        "responses": {"200": openapi.json_response("…", {…}), **openapi.errors(400, 401, 503)},
    })

Shared shapes are in :data:`COMPONENTS` (``Error``); :func:`errors` gives the documented error
responses for a list of statuses.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "ADMIN_TOKEN",
    "COMPONENTS",
    "OPERATIONS",
    "USER_KEY",
    "document",
    "errors",
    "json_body",
    "json_response",
    "openapi_route",
    "register",
]

USER_KEY: list[dict[str, list[str]]] = [{"userKey": []}]
ADMIN_TOKEN: list[dict[str, list[str]]] = [{"adminToken": []}]
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                # Upstream 4xx bodies are relayed as they are: their code may be a number.
                "code": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "message": {"type": "string"},
                "type": {"type": "string"},
                "fix": {"type": "string"},
            },
        }
    },
}
COMPONENTS: dict[str, Any] = {
    "schemas": {"Error": _ERROR},
    "securitySchemes": {
        "userKey": {"type": "http", "scheme": "bearer", "description": "A dxk_… Dexto key"},
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "DEXTO_GATEWAY_ADMIN_TOKEN",
        },
    },
}
_ERROR_TEXT = {
    400: "Malformed or invalid request (error.code names the problem)",
    401: "Missing, unknown or revoked key / token",
    402: "Insufficient Dexto credits",
    403: "Refused",
    404: "Not found (or the admin API is disabled)",
    405: "Method not allowed",
    413: "Body too large",
    415: "Unsupported Content-Type",
    429: "Rate limited; see Retry-After",
    500: "Unexpected failure (a bug)",
    502: "Upstream failure; not charged (except RESPONSE_TRANSLATION_FAILED on /v1/responses:"
    " charged, the amount in the message and X-Dexto-Cost)",
    503: "Database unavailable; see Retry-After; not charged",
    504: "Upstream timeout; not charged",
}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def register(path: str, method: str, operation: dict[str, Any]) -> None:
    OPERATIONS[(path, method.lower())] = operation


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        resp: dict[str, Any] = json_response(
            _ERROR_TEXT[status], {"$ref": "#/components/schemas/Error"}
        )
        if status in (429, 503):
            resp["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
        out[str(status)] = resp
    return out


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True) -> Any:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_USD = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$"}
_AMOUNT = {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": 40}]}
_ACCOUNT = _obj({"id": _STR, "email": _STR}, ("id", "email"))
_KEY_INFO = _obj({"id": _STR, "prefix": _STR, "name": _NSTR}, ("id",))
_USAGE = _obj(
    {
        "account": _ACCOUNT,
        "balanceUsd": _USD,
        "mtd": _obj({"costUsd": _USD, "requests": {"type": "integer"}}, ("costUsd", "requests")),
        "recent": {
            "type": "array",
            "items": _obj(
                {
                    "ts": _STR,
                    "requestId": _STR,
                    "model": _NSTR,
                    "costUsd": _USD,
                    "promptTokens": {"type": "integer", "nullable": True},
                    "completionTokens": {"type": "integer", "nullable": True},
                    "sessionId": _NSTR,
                    "source": _NSTR,
                },
                ("ts", "requestId", "costUsd"),
            ),
        },
    },
    ("account", "balanceUsd", "mtd", "recent"),
)
_MESSAGE = _obj(
    {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "nullable": True,
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        },
    },
    ("role",),
)
_CHAT_REQUEST = _obj(
    {
        "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"\S"},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean", "nullable": True},
        "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "tools": {"type": "array", "items": {"type": "object"}, "nullable": True},
    },
    ("model", "messages"),
)
_CHAT_RESPONSE = _obj(
    {
        "id": _STR,
        "object": _STR,
        "model": _STR,
        "choices": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
    },
    ("choices",),
)


def _builtin() -> None:
    register(
        "/v1/chat/completions",
        "post",
        {
            "summary": "OpenAI-compatible chat completion, billed in Dexto credits",
            "security": USER_KEY,
            "requestBody": json_body(_CHAT_REQUEST),
            "responses": {
                "200": {
                    "description": "The completion (JSON), or an SSE stream when stream=true",
                    "content": {
                        "application/json": {"schema": _CHAT_RESPONSE},
                        # One schema per server-sent event: data is a chunk JSON or "[DONE]".
                        "text/event-stream": {
                            "schema": _obj({"data": _STR, "event": _STR}, ("data",))
                        },
                    },
                },
                **errors(400, 401, 402, 413, 415, 429, 502, 503, 504),
                "4XX": json_response(
                    "Any other upstream 4xx, relayed as it is; not charged",
                    {"$ref": "#/components/schemas/Error"},
                ),
            },
        },
    )
    register(
        "/v1/models",
        "get",
        {
            "summary": "The upstream model list (cached)",
            "responses": {
                "200": json_response(
                    "Models", _obj({"data": {"type": "array", "items": {"type": "object"}}})
                ),
                **errors(502),
            },
        },
    )
    register(
        "/me/usage",
        "get",
        {
            "summary": "Balance, month-to-date cost and recent charges of the key's account",
            "security": USER_KEY,
            "responses": {"200": json_response("Usage", _USAGE), **errors(401, 503)},
        },
    )
    register(
        "/auth/device/code",
        "post",
        {
            "summary": "Start a device login (RFC 8628 style)",
            "requestBody": json_body(_obj({}), required=False),
            "responses": {
                "200": json_response(
                    "A device code",
                    _obj(
                        {
                            "device_code": _STR,
                            "user_code": {"type": "string", "pattern": "^[A-Z]{4}-[A-Z]{4}$"},
                            "verification_uri": _STR,
                            "verification_uri_complete": _STR,
                            "expires_in": {"type": "integer"},
                            "interval": {"type": "integer"},
                        },
                        ("device_code", "user_code", "verification_uri", "expires_in"),
                    ),
                ),
                **errors(400, 413, 429, 503),
            },
        },
    )
    register(
        "/auth/device/token",
        "post",
        {
            "summary": "Poll for the key once the device login is approved (exactly once)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _obj(
                            {"device_code": {**_STR, "maxLength": 200}}, ("device_code",)
                        )
                    },
                    "application/x-www-form-urlencoded": {
                        "schema": _obj({"device_code": _STR}, ("device_code",))
                    },
                },
            },
            "responses": {
                "200": json_response(
                    "The new key",
                    _obj(
                        {"apiKey": _STR, "keyId": _STR, "account": _ACCOUNT},
                        ("apiKey", "keyId", "account"),
                    ),
                ),
                **errors(400, 413, 415, 503),
            },
        },
    )
    register(
        "/device",
        "get",
        {
            "summary": "The approval page (sets the per-page CSRF cookie)",
            "parameters": [{"name": "user_code", "in": "query", "required": False, "schema": _STR}],
            "responses": {"200": {"description": "HTML form", "content": _HTML}, **errors(503)},
        },
    )
    form = _obj(
        {
            "user_code": _STR,
            "email": _STR,
            "password": _STR,
            "action": {"type": "string", "enum": ["approve", "deny"]},
            "csrf": _STR,
        }
    )
    register(
        "/device",
        "post",
        {
            "summary": "Approve or deny a device login with email and password",
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": form}},
            },
            "responses": {
                **{
                    str(s): {"description": d, "content": _HTML}
                    for s, d in (
                        (200, "Approved or denied"),
                        (401, "Wrong email or password"),
                        (403, "Cross-site post, stale page, or the code is locked"),
                        (404, "Unknown or expired code"),
                        (429, "Too many failures; see Retry-After"),
                    )
                },
                **errors(400, 413, 415, 503),
            },
        },
    )
    _admin()


def _admin() -> None:
    account_param = [{"name": "account", "in": "path", "required": True, "schema": _STR}]
    listed = _obj({**_ACCOUNT["properties"], "balanceUsd": _USD}, ("id", "email", "balanceUsd"))
    created = json_response(
        "Account and its first key", _obj({"account": _ACCOUNT, "apiKey": _STR})
    )
    admin_errors = errors(400, 401, 404, 413, 415, 503)
    register(
        "/admin/accounts",
        "post",
        {
            "summary": "Create an account (optionally with a password and credits)",
            "security": ADMIN_TOKEN,
            "requestBody": json_body(
                _obj(
                    {
                        "email": {"type": "string", "maxLength": 320},
                        "password": {"type": "string", "maxLength": 1000, "nullable": True},
                        "credits": {**_AMOUNT, "nullable": True},
                    },
                    ("email",),
                )
            ),
            "responses": {"200": created, **admin_errors},
        },
    )
    register(
        "/admin/accounts",
        "get",
        {
            "summary": "List accounts",
            "security": ADMIN_TOKEN,
            "responses": {
                "200": json_response(
                    "Accounts", _obj({"accounts": {"type": "array", "items": listed}})
                ),
                **admin_errors,
            },
        },
    )
    register(
        "/admin/accounts/{account}/credits",
        "post",
        {
            "summary": "Add credits (USD, up to 6 decimals); once per Idempotency-Key",
            "security": ADMIN_TOKEN,
            "parameters": [
                *account_param,
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Retrying with the same key adds nothing more",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"},
                },
            ],
            "requestBody": json_body(_obj({"usd": _AMOUNT}, ("usd",))),
            "responses": {
                "200": json_response(
                    "New balance",
                    _obj(
                        {
                            "accountId": _STR,
                            "addedUsd": _USD,
                            "balanceUsd": _USD,
                            "reference": _STR,
                            "duplicate": {"type": "boolean"},
                        }
                    ),
                ),
                **admin_errors,
            },
        },
    )
    key_created = json_response("The key, shown once", _obj({"key": _KEY_INFO, "apiKey": _STR}))
    register(
        "/admin/accounts/{account}/keys",
        "post",
        {
            "summary": "Create a key",
            "security": ADMIN_TOKEN,
            "parameters": account_param,
            "requestBody": json_body(
                _obj({"name": {"type": "string", "maxLength": 200, "nullable": True}}),
                required=False,
            ),
            "responses": {"200": key_created, **admin_errors},
        },
    )
    register(
        "/admin/accounts/{account}/keys",
        "get",
        {
            "summary": "List an account's keys (never the keys themselves)",
            "security": ADMIN_TOKEN,
            "parameters": account_param,
            "responses": {
                "200": json_response(
                    "Keys", _obj({"keys": {"type": "array", "items": {"type": "object"}}})
                ),
                **admin_errors,
            },
        },
    )
    register(
        "/admin/accounts/{account}/usage",
        "get",
        {
            "summary": "An account's usage (same shape as /me/usage)",
            "security": ADMIN_TOKEN,
            "parameters": account_param,
            "responses": {"200": json_response("Usage", _USAGE), **admin_errors},
        },
    )
    register(
        "/admin/keys/{key}/revoke",
        "post",
        {
            "summary": "Revoke a key (idempotent)",
            "security": ADMIN_TOKEN,
            "parameters": [{"name": "key", "in": "path", "required": True, "schema": _STR}],
            "responses": {
                "200": json_response("Revoked", _obj({"id": _STR, "revoked": {"type": "boolean"}})),
                **admin_errors,
            },
        },
    )


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), op in sorted(OPERATIONS.items()):
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Dexto gateway",
            "version": "1",
            "description": "Each path is also served under /api/v1 (OpenRouter base URLs):"
            " /api/v1/X is /v1/X, or /X for the paths outside /v1 (/api/v1/me/usage is"
            " /me/usage).",
        },
        "paths": paths,
        "components": COMPONENTS,
    }


def openapi_route() -> Route:
    async def endpoint(request: Request) -> Response:
        return Response(json.dumps(document()), media_type="application/json")

    return Route("/openapi.json", endpoint, methods=["GET"])


_builtin()
