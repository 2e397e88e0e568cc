"""Typed JSON errors: every failure is ``{"error": {"code", "message", "fix"}}`` with a status.

Dexto errors keep their own code; the HTTP status comes from ``STATUS_BY_CODE``. Errors met while
reading the server's own files (a corrupt agent file, auth store, …) are ``LocalStateFailure``:
same body, status 500, because the request itself was fine.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dexto.errors import DextoError

log = logging.getLogger("dexto.server")

__all__ = [
    "STATUS_BY_CODE",
    "ApiError",
    "LocalStateFailure",
    "error_body",
    "install_error_handlers",
    "status_for",
]

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "INVALID_CONFIG": 400,
    "PROVIDER_NOT_ALLOWED": 400,
    "UNKNOWN_PROVIDER": 400,
    "INVALID_MODEL_ID": 400,
    "UNAUTHORIZED": 401,
    "INSUFFICIENT_CREDITS": 402,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "NO_CREDENTIALS": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "NOT_AVAILABLE": 501,
    "MISSING_EXTRA": 501,
    "AUTH_FAILED": 502,
    "UPSTREAM_ERROR": 502,
}


class ApiError(DextoError):
    """An HTTP-level error with its own code (request shape, auth, size, routing)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fix: str = "",
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.api_code = code
        self.status = status or STATUS_BY_CODE.get(code, 400)
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.api_code, self.message, self.fix)


class LocalStateFailure(Exception):
    """A ``DextoError`` raised while reading local files: served as 500 with its own body."""

    def __init__(self, err: DextoError) -> None:
        super().__init__(err.message)
        self.err = err


def error_body(code: str, message: str, fix: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fix": fix}}


def status_for(err: DextoError) -> int:
    if isinstance(err, ApiError):
        return err.status
    return STATUS_BY_CODE.get(err.code, 500)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    msg = str(first.get("msg", "invalid request"))
    if first.get("type") == "extra_forbidden":
        msg = "unknown key"
    return f"{loc}: {msg}" if loc else msg


async def _on_dexto(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DextoError)
    headers = exc.headers if isinstance(exc, ApiError) else None
    return _json(status_for(exc), exc.to_dict(), headers)


async def _on_local(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LocalStateFailure)
    return _json(500, exc.err.to_dict())


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _json(
        400,
        error_body(
            "INVALID_REQUEST",
            _validation_message(exc),
            "send a JSON body matching the schema in /openapi.json",
        ),
    )


def _allowed_methods(request: Request) -> str | None:
    """Every documented method at this path (Starlette names only the first route's)."""
    path = request.url.path
    methods: set[str] = set()
    for template, ops in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", ".+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in ops}
    return ", ".join(sorted(methods)) or None


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allow = _allowed_methods(request)
        if allow:
            headers["Allow"] = allow
    return _json(exc.status_code, error_body(code, str(exc.detail), "see /openapi.json"), headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # the answer names only the class; the log gets the cause and its traceback
    log.error(
        "unexpected error on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
    return _json(
        500,
        error_body(
            "INTERNAL_ERROR",
            f"unexpected {type(exc).__name__}",
            "see the server log; please report it",
        ),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DextoError, _on_dexto)
    app.add_exception_handler(LocalStateFailure, _on_local)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
