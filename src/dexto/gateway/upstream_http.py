"""A lean HTTP/1.1 client for the upstream: asyncio protocol + httptools (C) response parser.

Why not httpx or aiohttp: see docs/gateway.md ("The upstream client") for the measurements. This
client does only what the proxy needs:

- keep-alive connection reuse per origin, at most ``max_connections`` open (requests beyond wait
  up to the connect timeout for a free one), idle connections closed after ``idle_timeout_s``;
- TLS (the system trust store, or a given ``ssl.SSLContext``);
- ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` from the environment (``CONNECT`` tunnel for
  ``https://`` upstreams, absolute-form requests for ``http://``), ``user:pass@`` → Basic auth;
- Content-Length, chunked and close-delimited bodies, streamed as they arrive (what is buffered
  when the consumer reads is handed on as one piece), with read back-pressure (reading pauses
  while the consumer is behind);
- a connect timeout and a read timeout (between bytes);
- no retry of a request once its bytes may have reached the upstream, except ``GET``
  (idempotent) on a reused connection that closed before any response byte. Idle connections the
  upstream has closed are noticed (EOF) and never reused.

Every failure is an ``UpstreamError`` subclass whose ``kind`` names what went wrong.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import SplitResult, unquote, urlsplit

import httptools

from dexto.errors import ConfigError

__all__ = [
    "HttpClient",
    "env_proxy",
    "UpstreamClosedError",
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamError",
    "UpstreamPoolTimeout",
    "UpstreamProtocolError",
    "UpstreamProxyError",
    "UpstreamResponse",
    "UpstreamTLSError",
    "UpstreamTimeout",
]

_HIGH_WATER = 64  # buffered body chunks before reading pauses (flow control) ...
_HIGH_WATER_BYTES = 1 << 20  # ... or buffered bytes
_IDEMPOTENT = frozenset({"GET"})  # (HEAD responses are not supported: no body expected)


class UpstreamError(Exception):
    """The upstream connection failed or sent something unparseable."""

    kind = "error"


class UpstreamConnectError(UpstreamError):
    """No connection could be made (refused, unreachable, DNS)."""

    kind = "connect"


class UpstreamTLSError(UpstreamConnectError):
    """The TLS handshake failed (e.g. the certificate is not trusted)."""

    kind = "tls"


class UpstreamProxyError(UpstreamConnectError):
    """The HTTP proxy refused or failed the ``CONNECT``."""

    kind = "proxy"


class UpstreamTimeout(UpstreamError):
    """Connecting, waiting for a free connection, or waiting for the next byte took too long."""

    kind = "timeout"


class UpstreamConnectTimeout(UpstreamTimeout):
    """The TCP/TLS/proxy connection was not made in time."""

    kind = "connect_timeout"


class UpstreamPoolTimeout(UpstreamTimeout):
    """Every allowed connection stayed busy for the whole connect timeout."""

    kind = "pool_timeout"


class UpstreamClosedError(UpstreamError):
    """The upstream closed the connection before the response was complete."""

    kind = "closed"


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not HTTP/1.1."""

    kind = "protocol"


class _Proto(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        self.busy = False
        self.pool: HttpClient | None = None  # told when the connection is lost
        self._waiter: asyncio.Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.framed = False  # Content-Length or Transfer-Encoding seen
        self.error: BaseException | None = None
        self.got_bytes = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes on an idle connection: it cannot be reused
            self._close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = UpstreamProtocolError(f"malformed HTTP response: {exc}")
            self._close()
        if (
            (len(self.chunks) > _HIGH_WATER or self.buffered > _HIGH_WATER_BYTES)
            and not self.paused
            and self.transport
        ):
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._finish_until_close()
        self.closed = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None:  # a clean close (not a reset) ends a close-delimited body
            self._finish_until_close()
        if not self.complete and self.error is None:
            self.error = UpstreamClosedError("the upstream closed the connection")
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool._lost()
        self._wake()

    def _finish_until_close(self) -> None:
        # A body without Content-Length or chunked framing ends when the connection closes.
        if self.busy and self.headers_done and self.until_close and self.error is None:
            self.complete = True

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.until_close = not self.framed and self.status >= 200 and self.status not in (204, 304)
        if self.until_close:
            self.keep_alive = False
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if body:
            self.chunks.append(body)
            self.buffered += len(body)

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

    def take(self) -> bytes:
        """Every body byte buffered so far, as one ``bytes`` (``b""`` when none): chunks that
        arrived together are relayed together."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport:
            self.paused = False
            self.transport.resume_reading()
        return data


class _Tunnel(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` (up to the blank line)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answer: asyncio.Future[bytes] = loop.create_future()
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if b"\r\n\r\n" in self._buf and not self.answer.done():
            self.answer.set_result(self._buf)
        elif len(self._buf) > 65536 and not self.answer.done():
            self.answer.set_exception(UpstreamProxyError("the proxy's CONNECT answer is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(
                UpstreamProxyError("the proxy closed the connection on CONNECT")
            )


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
        """The body as it arrives: each item is everything buffered when it is taken."""
        p = self._proto
        while True:
            chunk = p.take()
            if chunk:
                yield chunk
                continue
            if p.complete:
                return
            if p.error is not None:
                raise p.error
            await p.wait(self._timeout)

    async def aread(self) -> bytes:
        p = self._proto
        parts: list[bytes] = []
        while True:  # aiter_raw's loop, without an async generator
            chunk = p.take()
            if chunk:
                parts.append(chunk)
                continue
            if p.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if p.error is not None:
                raise p.error
            await p.wait(self._timeout)

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        p = self._proto
        p.busy = False
        if p.complete and p.keep_alive and not p.closed and not p.chunks:
            self._client._release(p)
        else:
            p._close()


def env_proxy(base_url: str) -> str | None:
    """The proxy URL the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) names for
    ``base_url`` (None: connect directly); ConfigError if it is not a usable ``http://`` URL."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(parts.scheme)
    if not url or not parts.hostname:
        return None
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - not in typeshed
    if bypass(parts.hostname, proxies):
        return None
    _parse_proxy(url, f"{parts.scheme.upper()}_PROXY")
    return url


def _parse_proxy(url: str, name: str) -> SplitResult:
    pp = urlsplit(url if "://" in url else f"http://{url}")
    try:
        pp.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        pp = urlsplit("x://")
    if pp.scheme != "http" or not pp.hostname:
        raise ConfigError(  # the URL itself is not echoed: it may hold a password
            "the proxy URL is not usable (only http://[user:pass@]host:port proxies)",
            field=name,
            fix=f"Set {name} to http://host:port, or add the upstream's host to NO_PROXY.",
        )
    return pp


class HttpClient:
    """Keep-alive HTTP/1.1 to one upstream origin (``http://`` or ``https://``).

    ``proxy``: ``"env"`` reads ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``; ``None`` connects
    directly; a URL (``http://[user:pass@]host:port``) uses that proxy.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        headers: dict[str, str],
        max_connections: int = 512,
        idle_timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = "env",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported upstream URL {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        default_port = (parts.scheme == "https" and self.port == 443) or (
            parts.scheme == "http" and self.port == 80
        )
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.authority = f"{self.host}:{self.port}"
        if ":" in self.host:  # IPv6 literal
            host_header = f"[{self.host}]" if default_port else f"[{self.host}]:{self.port}"
            self.authority = f"[{self.host}]:{self.port}"
        lines = [f"Host: {host_header}", "Accept-Encoding: identity", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        # The proxy, if any: where TCP connects, and how requests are addressed.
        proxy_url = env_proxy(base_url) if proxy == "env" else proxy
        self.proxy: tuple[str, int] | None = None
        self._proxy_auth: str | None = None
        self._target_prefix = ""
        if proxy_url:
            pp = _parse_proxy(proxy_url, f"{parts.scheme.upper()}_PROXY")
            assert pp.hostname is not None
            self.proxy = (pp.hostname, pp.port or 80)
            if pp.username is not None:
                cred = f"{unquote(pp.username)}:{unquote(pp.password or '')}".encode()
                self._proxy_auth = "Basic " + base64.b64encode(cred).decode("ascii")
            if self.ssl is None:  # plain HTTP through a proxy: absolute-form request targets
                self._target_prefix = f"http://{host_header}"
                if self._proxy_auth:
                    lines.append(f"Proxy-Authorization: {self._proxy_auth}")
        self._fixed = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max(1, max_connections)
        self.idle_timeout_s = idle_timeout_s
        self._idle: deque[tuple[float, _Proto]] = deque()  # oldest left, newest right
        self._open = 0  # connections opened or being opened, not yet lost
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._reaper: asyncio.TimerHandle | None = None

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def _connect(self) -> _Proto:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.proxy is not None and self.ssl is not None:
                    return await self._connect_tunnel(loop)
                host, port = self.proxy or (self.host, self.port)
                transport, proto = await loop.create_connection(
                    lambda: _Proto(loop),
                    host,
                    port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise UpstreamConnectTimeout("connecting to the upstream timed out") from None
        except ssl.SSLError as exc:
            raise UpstreamTLSError(f"TLS with the upstream failed: {exc.reason}") from None
        except OSError as exc:
            raise UpstreamConnectError(
                f"cannot connect to the upstream: {exc.strerror or type(exc).__name__}"
            ) from None
        # uvloop may call connection_made after create_connection returns: set it here too.
        proto.transport = transport
        return proto

    async def _connect_tunnel(self, loop: asyncio.AbstractEventLoop) -> _Proto:
        """TCP to the proxy, ``CONNECT host:port``, then TLS to the upstream inside the tunnel."""
        assert self.proxy is not None and self.ssl is not None
        raw, tunnel = await loop.create_connection(lambda: _Tunnel(loop), *self.proxy)
        try:
            head = f"CONNECT {self.authority} HTTP/1.1\r\nHost: {self.authority}\r\n"
            if self._proxy_auth:
                head += f"Proxy-Authorization: {self._proxy_auth}\r\n"
            raw.write((head + "\r\n").encode("latin-1"))
            answer = await tunnel.answer
            status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
            fields = status_line.split(" ", 2)
            if len(fields) < 2 or not fields[1].startswith("2"):
                raise UpstreamProxyError(f"the proxy refused CONNECT: {status_line[:100]}")
            proto = _Proto(loop)
            tls = await loop.start_tls(raw, proto, self.ssl, server_hostname=self.host)
        except BaseException:
            raw.abort()
            raise
        assert tls is not None
        proto.transport = tls
        return proto

    def _release(self, proto: _Proto) -> None:
        now = time.monotonic()
        self._idle.append((now, proto))
        self._expire_idle(now)
        if self._reaper is None:
            self._reaper = proto.loop.call_later(self.idle_timeout_s, self._reap)
        self._wake_waiter()

    def _reap(self) -> None:
        """Close idle connections past the idle timeout, also when no request comes."""
        self._reaper = None
        self._expire_idle(time.monotonic())
        if self._idle:
            loop = self._idle[0][1].loop
            due = self._idle[0][0] + self.idle_timeout_s - time.monotonic()
            self._reaper = loop.call_later(max(0.0, due) + 0.001, self._reap)

    def _expire_idle(self, now: float) -> None:
        while self._idle and (
            now - self._idle[0][0] > self.idle_timeout_s or self._idle[0][1].closed
        ):
            self._idle.popleft()[1]._close()

    def _lost(self) -> None:
        self._open -= 1
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def _acquire(self) -> tuple[_Proto, bool]:
        """A connection (reused: True) — idle, new, or the next one freed within the timeout."""
        deadline: float | None = None
        while True:
            now = time.monotonic()
            while self._idle:
                ts, cand = self._idle.pop()
                if cand.closed:
                    continue
                if now - ts > self.idle_timeout_s:
                    cand._close()
                    continue
                return cand, True
            if self._open < self.max_connections:
                self._open += 1
                try:
                    proto = await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_waiter()
                    raise
                proto.pool = self
                return proto, False
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.connect_timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamPoolTimeout(
                    f"all {self.max_connections} upstream connections stayed busy"
                )
            w: asyncio.Future[None] = loop.create_future()
            self._waiters.append(w)
            try:
                await asyncio.wait_for(w, remaining)
            except TimeoutError:
                pass
            except BaseException:
                if w.done() and not w.cancelled():
                    self._wake_waiter()  # pass on a wake-up this cancelled request took
                raise
            finally:
                if not w.done():
                    w.cancel()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        """Send; return once the response headers arrived (the body is streamed later)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        target = f"{self._target_prefix}{self.base_path}/{path.lstrip('/')}"
        head = (
            f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed
            + f"{extra}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
        )
        retry_ok = method in _IDEMPOTENT
        for attempt in (0, 1):
            proto, reused = await self._acquire()
            proto.reset()
            proto.busy = True
            assert proto.transport is not None
            proto.transport.write(head + body if body else head)
            try:
                while not proto.headers_done:
                    if proto.error is not None:
                        raise proto.error
                    await proto.wait(self.read_timeout)
            except UpstreamClosedError:
                proto._close()
                if retry_ok and reused and attempt == 0 and not proto.got_bytes:
                    continue  # an idempotent request on a stale keep-alive connection
                raise
            except BaseException:
                proto._close()
                raise
            return UpstreamResponse(self, proto, self.read_timeout)
        raise UpstreamError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, deque()
        for _, p in idle:
            p._close()
        for w in self._waiters:
            if not w.done():
                w.cancel()
        self._waiters.clear()
