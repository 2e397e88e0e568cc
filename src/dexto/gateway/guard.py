"""ASGI error guard: every failure escaping a handler becomes a JSON error, never plain text.

* :class:`HttpError` → its status and ``{"error": {code, message, type, fix?}}``;
* :class:`DatabaseUnavailable` → ``503 SERVICE_UNAVAILABLE`` with ``Retry-After``, counted in
  ``dexto_gateway_db_unavailable_total`` (the outage itself is logged once by the runner);
* anything else → ``500 INTERNAL_ERROR``, logged as one line (class and first line, no traceback).

If the response has already started (a stream), nothing more can be sent: the error is logged
and the connection ends.

A request cancelled (the server's graceful-shutdown deadline passed: uvicorn cancels the tasks
still running) is logged as one line; one whose response had not started gets
``503 SERVICE_UNAVAILABLE`` with ``Retry-After``. The cancellation ends here, so the server logs
no traceback and sends no plain-text 500 for it. (What such a request is billed is decided
inside the handler, before the cancellation reaches this guard.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from dexto.gateway.asgi import Receive, Scope, Send, send_bytes
from dexto.gateway.db import DatabaseUnavailable, describe
from dexto.gateway.http_errors import HttpError, error_body
from dexto.gateway.logs import get_logger, log_event
from dexto.gateway.state import GatewayState

__all__ = ["RETRY_AFTER_S", "ErrorGuard"]

RETRY_AFTER_S = 2
ASGIApp = Callable[[Scope, Receive, Send], Any]


class ErrorGuard:
    def __init__(self, app: ASGIApp, get_state: Callable[[], GatewayState]) -> None:
        self.app = app
        self.get_state = get_state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owner: Any = getattr(send, "__self__", None)
        if isinstance(getattr(owner, "response_started", None), bool):
            # uvicorn's request cycle records whether the response started: no wrapper
            # coroutine around every message sent.
            try:
                await self.app(scope, receive, send)
            except Exception as exc:  # noqa: BLE001 - answered or logged by _failed
                await self._failed(exc, scope, send, bool(owner.response_started))
            except asyncio.CancelledError:
                await self._cancelled(scope, send, bool(owner.response_started))
            return
        started = False

        async def tracked(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - answered or logged by _failed
            await self._failed(exc, scope, send, started)
        except asyncio.CancelledError:
            await self._cancelled(scope, send, started)

    def _log(self, scope: Scope, msg: str, level: int, **fields: Any) -> None:
        """One log line about the request in ``scope`` (its path and method)."""
        state = self._state()
        log_event(
            state.log if state is not None else get_logger(),
            msg,
            level,
            **fields,
            path=str(scope.get("path", ""))[:200],
            method=scope.get("method"),
        )

    async def _cancelled(self, scope: Scope, send: Send, started: bool) -> None:
        self._log(scope, "request cancelled", logging.WARNING)
        if not started:
            body = error_body(
                "SERVICE_UNAVAILABLE",
                "The gateway stopped before this request finished (it is shutting down).",
                "service_unavailable",
                fix="Retry the request.",
            )
            headers = [(b"retry-after", str(RETRY_AFTER_S).encode())]
            with contextlib.suppress(Exception):  # the connection may be closing too
                await send_bytes(send, 503, body, headers)

    async def _failed(self, exc: Exception, scope: Scope, send: Send, started: bool) -> None:
        if isinstance(exc, HttpError):
            if not started:
                headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
                await send_bytes(send, exc.status, exc.body(), headers)
        elif isinstance(exc, DatabaseUnavailable):
            state = self._state()
            if state is not None:
                state.metrics.inc("db_unavailable_total")
            if not started:
                body = error_body(
                    "SERVICE_UNAVAILABLE", exc.message, "service_unavailable", fix=exc.fix
                )
                await send_bytes(send, 503, body, [(b"retry-after", str(RETRY_AFTER_S).encode())])
        else:  # the last line of defence: answer, log once
            self._log(scope, "unhandled error", logging.ERROR, error=describe(exc))
            if not started:
                body = error_body(
                    "INTERNAL_ERROR",
                    "The gateway failed to handle this request.",
                    "server_error",
                )
                await send_bytes(send, 500, body, [])

    def _state(self) -> GatewayState | None:
        try:
            return self.get_state()
        except RuntimeError:
            return None
