"""The agent server's OpenAPI document and its ``/docs`` page.

FastAPI's generated document is post-processed so that it describes what the server answers:
every error is ``{"error": {"code", "message", "fix"}}`` (schema ``Error``), FastAPI's 422
``HTTPValidationError`` (never answered: validation failures are 400) is removed, and the
statuses the front door and the error handlers produce are listed on every operation:

- 400 on operations with parameters or a body (shape, unknown keys, typed config errors);
- 413 / 415 on operations with a body (size limit, non-JSON body);
- 403 everywhere (foreign ``Host``, cross-origin write), 500 everywhere (a corrupt local file);
- 401 everywhere and a bearer security scheme when the server has a token.

Query parameters named ``provider`` (and the ``provider`` of request bodies) are given
:func:`provider_schema`: the provider IDs in any ASCII case, as the server accepts them; those
named ``model`` the model-ID rule. ``/docs`` is Swagger
UI from the ``swagger-ui-py`` package, served from this server (no CDN).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS

__all__ = [
    "DOCS_ASSETS",
    "MODEL_ID_SCHEMA",
    "PROVIDER_IDS",
    "WS",
    "error_responses",
    "install_openapi",
    "provider_schema",
]

#: Providers a request may name (``dexto`` is a route, never a provider).
PROVIDER_IDS: list[str] = [pid for pid in PROVIDERS if pid != INTERNAL_PROVIDER]

#: Python's whitespace (``str.isspace``), spelled out for patterns: ``\s`` differs between
#: Python and the ECMA-262 regexes of JSON Schema (U+001C–U+001F, U+0085, U+FEFF).
WS = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ID_CHAR = rf"[^{WS}\x00-\x1f\x7f]"
_ID_END = rf"[^{WS}/\x00-\x1f\x7f]"

#: What ``validate_model_id`` accepts: 1–256 characters, no whitespace or control characters,
#: no leading or trailing ``/``.
MODEL_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": rf"^{_ID_END}({_ID_CHAR}*{_ID_END})?$",
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fix"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "stable error code, e.g. NO_CREDENTIALS"},
                "message": {"type": "string", "description": "what went wrong"},
                "fix": {"type": "string", "description": "what to do about it"},
            },
        }
    },
}

_DESCRIPTIONS: dict[int, str] = {
    400: "invalid request: INVALID_REQUEST (shape, unknown keys), INVALID_CONFIG, "
    "PROVIDER_NOT_ALLOWED, UNKNOWN_PROVIDER, INVALID_MODEL_ID",
    401: "UNAUTHORIZED: the bearer token is missing or wrong",
    403: "FORBIDDEN: a foreign Host header (DNS rebinding) or a cross-origin write",
    404: "NOT_FOUND",
    409: "the state does not allow it, e.g. NO_CREDENTIALS or a broken agent file",
    413: "PAYLOAD_TOO_LARGE: the body exceeds the limit",
    415: "UNSUPPORTED_MEDIA_TYPE: the body is not application/json",
    500: "a local file is corrupt (the error names the file and line); the request was fine",
    501: "NOT_AVAILABLE / MISSING_EXTRA: an optional part is not installed",
    502: "UPSTREAM_ERROR / AUTH_FAILED",
}


def _docs_assets() -> Path | None:
    """Swagger UI's files, shipped inside the ``swagger-ui-py`` package (found, not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


DOCS_ASSETS = _docs_assets()


def _any_case(provider_id: str) -> str:
    """``open-ai`` → ``[Oo][Pp][Ee][Nn]-[Aa][Ii]`` (IDs are ASCII letters, digits and ``-``)."""
    if not all(c.isascii() and (c.isalnum() or c == "-") for c in provider_id):
        raise ValueError(f"provider ID {provider_id!r} needs escaping in a pattern")
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in provider_id)


def provider_schema(ids: list[str]) -> dict[str, Any]:
    """A string schema (also a ``json_schema_extra``) accepting exactly ``ids`` in any ASCII
    case, as ``get_provider`` does (``OpenAI`` is ``openai``; ``dexto`` is not among them)."""
    return {
        "type": "string",
        "pattern": "^(?:" + "|".join(_any_case(i) for i in ids) + ")$",
        "description": "a provider ID, in any case: " + ", ".join(ids),
        "examples": list(ids[:3]),
    }


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Route-level ``responses=`` entries for statuses specific to one operation."""
    return {s: _error_response(s) for s in statuses}


def _enrich(op: dict[str, Any], *, token: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    params = op.get("parameters", [])
    statuses = [403, 500]
    if params or "requestBody" in op:
        statuses.append(400)
    if "requestBody" in op:
        statuses += [413, 415]
    if token:
        statuses.append(401)
    for status in statuses:
        responses.setdefault(str(status), _error_response(status))
    for p in params:
        if p.get("in") != "query":
            continue
        if p.get("name") == "provider":
            p["schema"] = provider_schema(PROVIDER_IDS)
        elif p.get("name") == "model":
            p["schema"] = MODEL_ID_SCHEMA


def build_openapi(app: FastAPI, *, token: bool) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            _enrich(op, token=token)
    if token:
        doc["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "the token given to `dexto serve --token`",
            }
        }
        doc["security"] = [{"bearer": []}]
    return doc


def install_openapi(app: FastAPI, *, token: bool) -> None:
    """Replace ``app.openapi`` with the post-processed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, token=token)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
