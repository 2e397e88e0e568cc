"""The server's front door (pure ASGI, so streams pass through untouched).

In order: Host allow-list on loopback binds (DNS rebinding), cross-origin writes refused (the
``Origin`` must equal this server's own origin: scheme, host and port, default ports
normalised; ``Origin: null`` is refused too), bearer
token when one is configured, JSON-only request bodies, and a body size limit enforced on the
bytes actually received (not only the ``Content-Length`` header).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from dexto.server.errors import STATUS_BY_CODE, error_body

__all__ = ["PUBLIC_PATHS", "Guard", "same_origin"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The pages, their assets and the API description carry no data, so a browser can load them
#: before it has the token.
PUBLIC_PATHS = ("/", "/favicon.ico", "/docs", "/openapi.json")
PUBLIC_PREFIXES = ("/static/", "/docs/assets/")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class _Reject(Exception):
    def __init__(
        self, code: str, message: str, fix: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.fix = code, message, fix
        self.headers = headers or {}


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: frozenset[str] | None,
        max_body: int,
    ) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        try:
            self._check_host_and_origin(scope, headers)
            self._check_token(scope, headers)
            if scope["method"] in _BODY_METHODS:
                receive = await self._buffer_body(headers, receive)
        except _Reject as rej:
            await _send_error(send, rej)
            return
        await self.app(scope, receive, send)

    def _check_host_and_origin(self, scope: Scope, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            raise _Reject(
                "FORBIDDEN",
                f"host {host!r} is not served here",
                "open the page through http://127.0.0.1 or http://localhost",
            )
        origin = headers.get("origin")
        if (
            origin is not None
            and scope["method"] not in ("GET", "HEAD")
            and not same_origin(origin, str(scope.get("scheme", "http")), host)
        ):
            raise _Reject(
                "FORBIDDEN",
                "cross-origin requests are refused",
                "call the API from the page served by this server",
            )

    def _check_token(self, scope: Scope, headers: dict[str, str]) -> None:
        path: str = scope["path"]
        if self.token is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        given = headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        ):
            raise _Reject(
                "UNAUTHORIZED",
                "a valid bearer token is required",
                "send `Authorization: Bearer <token>` (the token given to `dexto "
                "serve --token` or DEXTO_SERVER_TOKEN)",
                {"www-authenticate": 'Bearer realm="dexto"'},
            )

    async def _buffer_body(self, headers: dict[str, str], receive: Receive) -> Receive:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _too_large(self.max_body)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _too_large(self.max_body)
            chunks.append(chunk)
            more = bool(msg.get("more_body"))
        body = b"".join(chunks)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and ctype != "application/json":
            raise _Reject(
                "UNSUPPORTED_MEDIA_TYPE",
                f"content type {ctype or 'none'!r} is not accepted",
                "send the body as application/json",
            )
        return _replay(body, receive)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    scheme = scheme.lower()
    return (
        scheme,
        parts.hostname.lower(),
        port if port is not None else _DEFAULT_PORTS.get(scheme, -1),
    )


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether the ``Origin`` header names this server (``scheme://host``) exactly."""
    try:
        given = urlsplit(origin.strip())
    except ValueError:
        return False
    if given.path not in ("", "/") or given.query or given.fragment or not given.scheme:
        return False
    mine = _origin_tuple(scheme, host)
    return mine is not None and _origin_tuple(given.scheme, given.netloc) == mine


def _too_large(limit: int) -> _Reject:
    return _Reject(
        "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes", "send a smaller body"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, rej: _Reject) -> None:
    payload = json.dumps(error_body(rej.code, rej.message, rej.fix)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in rej.headers.items()]
    await send(
        {"type": "http.response.start", "status": STATUS_BY_CODE[rej.code], "headers": raw_headers}
    )
    await send({"type": "http.response.body", "body": payload})
