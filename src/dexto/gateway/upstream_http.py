"""A lean HTTP/1.1 client for the upstream: asyncio protocol + httptools (C) response parser.

Why not httpx: its connection pool costs O(open connections) CPU per request, which dominated the
gateway's CPU under load. This client does only what the proxy needs: keep-alive connection
reuse per origin, TLS, Content-Length/chunked/until-close bodies streamed chunk by chunk, a
connect timeout and a read timeout (between bytes), and one retry of a request that failed on a
reused idle connection before any response byte arrived.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "HttpClient",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
]

_MAX_IDLE = 512
_HIGH_WATER = 64  # buffered body chunks before we pause reading (flow control)


class UpstreamError(Exception):
    """The upstream connection failed or sent something unparseable."""


class UpstreamConnectError(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class _Proto(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.got_bytes = False
        self.chunks: deque[bytes] = deque()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = UpstreamError(f"malformed HTTP response: {exc}")
            self._close()
        if len(self.chunks) > _HIGH_WATER and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        try:
            self.parser.feed_data(b"")  # lets until-close bodies complete
        except httptools.HttpParserError:
            pass
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = UpstreamError("the upstream closed the connection")
        self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    # helpers
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self, timeout: float) -> None:
        """Wait for the next parser event (or error); UpstreamTimeout after ``timeout``."""
        w = self._waiter = self.loop.create_future()
        handle = self.loop.call_later(timeout, _expire, w)
        try:
            await w
        finally:
            handle.cancel()
            self._waiter = None

    def take(self) -> bytes | None:
        if self.chunks:
            chunk = self.chunks.popleft()
            if self.paused and len(self.chunks) < _HIGH_WATER // 2 and self.transport:
                self.paused = False
                self.transport.resume_reading()
            return chunk
        return None


def _expire(w: asyncio.Future[None]) -> None:
    if not w.done():
        w.set_exception(UpstreamTimeout("the upstream did not answer in time"))


class UpstreamResponse:
    def __init__(self, client: HttpClient, proto: _Proto, read_timeout: float) -> None:
        self._client = client
        self._proto = proto
        self._timeout = read_timeout
        self.status_code = proto.status
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in proto.headers}
        self._released = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        p = self._proto
        while True:
            chunk = p.take()
            if chunk is not None:
                yield chunk
                continue
            if p.complete:
                return
            if p.error is not None:
                raise p.error
            await p.wait(self._timeout)

    async def aread(self) -> bytes:
        return b"".join([c async for c in self.aiter_raw()])

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        p = self._proto
        if p.complete and p.keep_alive and not p.closed and not p.chunks:
            self._client._release(p)
        else:
            p._close()


class HttpClient:
    """Keep-alive HTTP/1.1 to one upstream origin (``http://`` or ``https://``)."""

    def __init__(
        self, base_url: str, *, connect_timeout: float, read_timeout: float, headers: dict[str, str]
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported upstream URL {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        default_port = (parts.scheme == "https" and self.port == 443) or (
            parts.scheme == "http" and self.port == 80
        )
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        lines = [f"Host: {host_header}", "Accept-Encoding: identity", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._fixed = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Proto] = []

    async def _connect(self) -> _Proto:
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Proto(loop),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamTimeout("connecting to the upstream timed out") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to the upstream: {exc.strerror}") from None
        # uvloop may call connection_made after create_connection returns: set it here too.
        proto.transport = transport
        return proto

    def _release(self, proto: _Proto) -> None:
        if len(self._idle) < _MAX_IDLE:
            self._idle.append(proto)
        else:
            proto._close()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        """Send; return once the response headers arrived (the body is streamed later)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {self.base_path}/{path.lstrip('/')} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed
            + f"{extra}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
        )
        for attempt in (0, 1):
            reused = False
            proto: _Proto | None = None
            while self._idle:
                cand = self._idle.pop()
                if not cand.closed:
                    proto, reused = cand, True
                    break
            if proto is None:
                proto = await self._connect()
            proto.reset()
            assert proto.transport is not None
            proto.transport.write(head + body if body else head)
            try:
                while not proto.headers_done:
                    if proto.error is not None:
                        raise proto.error
                    await proto.wait(self.read_timeout)
            except UpstreamTimeout:
                proto._close()
                raise
            except UpstreamError:
                proto._close()
                if reused and attempt == 0 and not proto.got_bytes:
                    continue  # a stale keep-alive connection: retry once on a fresh one
                raise
            except BaseException:
                proto._close()
                raise
            return UpstreamResponse(self, proto, self.read_timeout)
        raise UpstreamError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for p in idle:
            p._close()
