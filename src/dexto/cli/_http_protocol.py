"""uvicorn's httptools protocol, with a fixed-length response's head and body in one write.

uvicorn writes the status line and headers to the socket when the app sends
``http.response.start``, and the body with the next ``http.response.body``: two writes (two
``send`` system calls, two TCP segments) for every answer. Here, when the response has a
``Content-Length`` (not chunked, not ``HEAD``), the head uvicorn built is kept and written
together with the first body message. Everything else (validation, 100-continue, keep-alive,
chunked streams, errors) is uvicorn's own code; a head still held when the app ends without a
body is written then, as uvicorn would have.
"""

from __future__ import annotations

import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["CoalescingHttpToolsProtocol"]


class _Capture:
    """Stands in for the transport while uvicorn builds the head: keeps what it writes."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _Prefixed:
    """Stands in for the transport while uvicorn sends the first body message: its first write
    goes out after the held head, in one write."""

    __slots__ = ("head", "real")

    def __init__(self, real: Any, head: bytes) -> None:
        self.real = real
        self.head = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.real.write(head + data if head else data)

    def close(self) -> None:
        self.real.close()


class _CoalescingCycle(RequestResponseCycle):
    _held = b""  # the head built for ``http.response.start``, not yet written

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # here, so that uvicorn's send below never suspends
        if self._held:
            real = self.transport
            carrier = _Prefixed(real, self._held)
            self._held = b""
            self.transport = carrier  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
                if carrier.head and not self.disconnected:
                    real.write(carrier.head)  # a refused message: the head alone, as before
        elif not self.response_started and message["type"] == "http.response.start":
            real = self.transport
            capture = _Capture()
            self.transport = capture  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
            if self.chunked_encoding is False and self.scope["method"] != "HEAD":
                self._held = capture.data
            elif capture.data:
                real.write(capture.data)
        else:
            await super().send(message)

    def flush_held(self) -> None:
        """Write a head still held (the app ended or failed before its body)."""
        held, self._held = self._held, b""
        if held and not self.disconnected:
            self.transport.write(held)

    async def run_asgi(self, app: Any) -> None:
        await super().run_asgi(functools.partial(_app_then_flush, self, app))


async def _app_then_flush(
    cycle: _CoalescingCycle, app: Any, scope: Any, receive: Any, send: Any
) -> None:
    try:
        await app(scope, receive, send)
    finally:
        cycle.flush_held()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose request cycles write a fixed-length response's head with its
    body (pass it as ``uvicorn.Config(http=...)``). With a uvicorn that starts request cycles
    other than through ``_start_asgi_task``, it is uvicorn's protocol unchanged."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = _CoalescingCycle  # same attributes; send and run_asgi overridden
        super()._start_asgi_task(cycle, app)
