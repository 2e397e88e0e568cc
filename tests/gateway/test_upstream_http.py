"""The upstream HTTP/1.1 client against real sockets on loopback.

Each upstream here is a raw asyncio server whose bytes the test controls (framing, splits, closes,
silence); TLS uses a CA generated in the test (trustme); the proxy is a real CONNECT/forwarding
relay. Every test runs on both the stdlib event loop and uvloop (what the gateway serves on).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.errors import ConfigError
from dexto.gateway.upstream_http import (
    HttpClient,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamPoolTimeout,
    UpstreamProtocolError,
    UpstreamProxyError,
    UpstreamTimeout,
    UpstreamTLSError,
    env_proxy,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream"], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


def _current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def _shutdown(server: asyncio.Server, tasks: dict[asyncio.Task[Any], Any]) -> None:
    """Stop listening, close every connection and wait for its handler to finish."""
    server.close()
    for writer in tasks.values():
        writer.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


@dataclass
class Upstream:
    """A raw TCP (or TLS) server: ``handler`` answers each connection."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0
    tasks: dict[asyncio.Task[Any], asyncio.StreamWriter] = field(default_factory=dict)

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await _shutdown(self.server, self.tasks)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks[_current()] = writer
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/api/v1"


def keep_alive(*responses: bytes) -> Handler:
    """Answer requests on one connection with ``responses`` in turn (the last repeats)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        i = 0
        while True:
            await up.read_request(r)
            w.write(responses[min(i, len(responses) - 1)])
            await w.drain()
            i += 1

    return handler


def client(url: str, **kw: Any) -> HttpClient:
    kw.setdefault("proxy", None)
    return HttpClient(url, connect_timeout=5, read_timeout=5, headers={"X-Test": "1"}, **kw)


async def fetch(c: HttpClient, method: str = "POST") -> tuple[int, bytes]:
    resp = await c.request(method, "chat/completions", b'{"a":1}' if method == "POST" else b"")
    try:
        return resp.status_code, await resp.aread()
    finally:
        await resp.aclose()


def test_keep_alive_reuses_one_connection(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK)) as up:
            c = client(up.url())
            assert await fetch(c) == (200, b"ok")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert up.connections == 1 and len(up.requests) == 2
        first = up.requests[0]
        assert first.startswith(b"POST /api/v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nX-Test: 1\r\n" in first and first.endswith(b'{"a":1}')

    run(go())


def test_chunked_body_in_pieces(run: Callable[..., Any]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello ", b"chunked ", b"world"):
            w.write(b"%x\r\n%s\r\n" % (len(part), part))
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()
        await r.read()  # keep the connection open until the client goes

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            assert await fetch(c) == (200, b"hello chunked world")
            assert c.idle_connections == 1  # complete: kept for reuse
            await c.aclose()

    run(go())


def test_close_delimited_body(run: Callable[..., Any]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            w.write(part)
            await w.drain()
        # returning closes the connection: that ends the body

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            resp = await c.request("POST", "chat/completions", b"{}")
            assert resp.headers["content-type"] == "text/event-stream"
            chunks = [x async for x in resp.aiter_raw()]
            await resp.aclose()
            assert b"".join(chunks) == b"data: 1\n\ndata: 2\n\n"
            assert await fetch(c) == (200, b"data: 1\n\ndata: 2\n\n")
            await c.aclose()
        assert up.connections == 2  # a close-delimited connection is never reused

    run(go())


def test_split_reads_byte_by_byte(run: Callable[..., Any]) -> None:
    raw = (
        b"HTTP/1.1 201 Created\r\nX-Long-Header: " + b"v" * 300 + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n3\r\nfgh\r\n0\r\n\r\n"
    )

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        for i in range(len(raw)):
            w.write(raw[i : i + 1])
            await w.drain()
            await asyncio.sleep(0)
        await r.read()

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            resp = await c.request("GET", "models")
            assert resp.status_code == 201 and resp.headers["x-long-header"] == "v" * 300
            assert await resp.aread() == b"abcdefgh"
            await resp.aclose()
            await c.aclose()

    run(go())


def test_reading_pauses_while_the_consumer_is_behind(run: Callable[..., Any]) -> None:
    parts = [b"part-%04d;" % i for i in range(400)]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in parts:
            w.write(b"%x\r\n%s\r\n" % (len(part), part))
        w.write(b"0\r\n\r\n")
        await w.drain()
        await r.read()

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            resp = await c.request("POST", "chat/completions", b"{}")
            proto = resp._proto
            for _ in range(500):  # wait (bounded) until the buffer fills and reading pauses
                if proto.paused:
                    break
                await asyncio.sleep(0.01)
            assert proto.paused
            got = [x async for x in resp.aiter_raw()]
            assert not proto.paused  # resumed as the consumer caught up
            assert b"".join(got) == b"".join(parts)
            await resp.aclose()
            await c.aclose()

    run(go())


async def _wait_idle_closed(c: HttpClient) -> None:
    for _ in range(500):
        if all(p.closed for _, p in c._idle):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the idle connection never saw the upstream's close")


def test_stale_keep_alive_is_not_reused(run: Callable[..., Any]) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        w.write(OK)  # says keep-alive, then closes: the idle connection goes stale
        await w.drain()

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            assert await fetch(c) == (200, b"ok")
            await _wait_idle_closed(c)
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert up.connections == 2 and len(up.requests) == 2

    run(go())


def _answer_once_then_drop() -> Handler:
    """Connection 1: answer the first request, read the second and close without an answer.
    Later connections: answer everything."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        first = up.connections == 1
        await up.read_request(r)
        w.write(OK)
        await w.drain()
        if first:
            await up.read_request(r)
            return
        await keep_alive(OK)(r, w, up)

    return handler


def test_post_is_never_retried_once_sent(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(_answer_once_then_drop()) as up:
            c = client(up.url())
            assert await fetch(c) == (200, b"ok")
            with pytest.raises(UpstreamClosedError) as err:
                await fetch(c)
            assert err.value.kind == "closed"
            await c.aclose()
        assert len(up.requests) == 2 and up.connections == 1  # no duplicate POST

    run(go())


def test_get_is_retried_once_on_a_stale_connection(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(_answer_once_then_drop()) as up:
            c = client(up.url())
            assert await fetch(c, "GET") == (200, b"ok")
            assert await fetch(c, "GET") == (200, b"ok")
            await c.aclose()
        assert len(up.requests) == 3 and up.connections == 2

    run(go())


def test_idle_connections_expire(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK)) as up:
            c = client(up.url(), idle_timeout_s=0.05)
            assert await fetch(c) == (200, b"ok")
            assert c.idle_connections == 1
            for _ in range(500):  # no further request: the reaper closes it
                if c.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert c.idle_connections == 0 and c.open_connections == 0
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert up.connections == 2

    run(go())


def test_connection_cap_queues_then_times_out(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK)) as up:
            c = HttpClient(
                up.url(),
                connect_timeout=0.3,
                read_timeout=5,
                headers={},
                max_connections=1,
                proxy=None,
            )
            held = await c.request("POST", "chat/completions", b"{}")
            waiting = asyncio.ensure_future(fetch(c))
            await asyncio.sleep(0)
            assert not waiting.done() and c.open_connections == 1
            assert await held.aread() == b"ok"
            await held.aclose()  # frees the one connection: the queued request takes it
            assert await waiting == (200, b"ok")
            held = await c.request("POST", "chat/completions", b"{}")
            with pytest.raises(UpstreamPoolTimeout) as err:
                await fetch(c)
            assert err.value.kind == "pool_timeout"
            await held.aclose()
            await c.aclose()
        assert up.connections == 1

    run(go())


# --- TLS and proxies -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def _client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_tls_upstream(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            c = client(up.url("https"), ssl_context=_client_ctx(ca))
            assert await fetch(c) == (200, b"ok")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert up.connections == 1
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % up.port in up.requests[0]

    run(go())


def test_tls_untrusted_certificate(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            c = client(up.url("https"), ssl_context=ssl.create_default_context())
            with pytest.raises(UpstreamTLSError) as err:
                await fetch(c)
            assert err.value.kind == "tls" and c.open_connections == 0
            await c.aclose()

    run(go())


@dataclass
class Relay:
    """An HTTP proxy: ``CONNECT`` tunnels, absolute-form requests forwarded verbatim."""

    refuse: bool = False
    seen: list[bytes] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None
    tasks: dict[asyncio.Task[Any], asyncio.StreamWriter] = field(default_factory=dict)

    async def __aenter__(self) -> Relay:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await _shutdown(self.server, self.tasks)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks[_current()] = writer
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.seen.append(head)
            method, target = head.split(b" ")[:2]
            if self.refuse:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
            if method == b"CONNECT":
                host, port = target.rsplit(b":", 1)
                ur, uw = await asyncio.open_connection(host.decode(), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport = target.split(b"/")[2]
                host, port = hostport.rsplit(b":", 1)
                ur, uw = await asyncio.open_connection(host.decode(), int(port))
                uw.write(head)
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()


def test_https_proxy_tunnel_from_env(
    run: Callable[..., Any], ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with Relay() as relay, Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            monkeypatch.setenv("HTTPS_PROXY", f"http://u%40x:p%3Aw@127.0.0.1:{relay.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            c = client(up.url("https"), ssl_context=_client_ctx(ca), proxy="env")
            assert await fetch(c) == (200, b"ok")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert len(relay.seen) == 1
        assert relay.seen[0].startswith(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % up.port)
        # Basic base64("u@x:p:w")
        assert b"Proxy-Authorization: Basic dUB4OnA6dw==\r\n" in relay.seen[0]
        assert up.connections == 1 and len(up.requests) == 2

    run(go())


def test_http_proxy_absolute_form_and_no_proxy(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with Relay() as relay, Upstream(keep_alive(OK)) as up:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{relay.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            c = client(up.url(), proxy="env")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
            target = b"POST http://127.0.0.1:%d/api/v1/chat/completions HTTP/1.1" % up.port
            assert relay.seen[0].startswith(target)
            monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
            c = client(up.url(), proxy="env")
            assert c.proxy is None
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert len(relay.seen) == 1 and len(up.requests) == 2

    run(go())


def test_proxy_refusing_connect(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Relay(refuse=True) as relay:
            c = client(
                "https://127.0.0.1:9/api/v1",
                ssl_context=_client_ctx(ca),
                proxy=f"http://127.0.0.1:{relay.port}",
            )
            with pytest.raises(UpstreamProxyError) as err:
                await fetch(c)
            assert err.value.kind == "proxy" and "407" in str(err.value)
            await c.aclose()

    run(go())


# --- each error class ----------------------------------------------------------------------


async def _silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
    await up.read_request(r)
    await r.read()  # never answers


async def _garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
    await up.read_request(r)
    w.write(b"SMTP READY\r\n\r\n")
    await w.drain()
    await r.read()


async def _cut_body(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
    await up.read_request(r)
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    await w.drain()


async def _reset_close_delimited(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream
) -> None:
    await up.read_request(r)
    w.write(b"HTTP/1.1 200 OK\r\n\r\npartial body")
    await w.drain()
    sock = w.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()  # a reset, not a clean close: the body is not complete


async def _no_answer(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
    await up.read_request(r)


@pytest.mark.parametrize(
    ("handler", "error", "kind"),
    [
        (_silent, UpstreamTimeout, "timeout"),
        (_garbage, UpstreamProtocolError, "protocol"),
        (_cut_body, UpstreamClosedError, "closed"),
        (_no_answer, UpstreamClosedError, "closed"),
        (_reset_close_delimited, UpstreamClosedError, "closed"),
    ],
)
def test_error_classes(
    run: Callable[..., Any], handler: Handler, error: type[UpstreamError], kind: str
) -> None:
    async def go() -> None:
        async with Upstream(handler) as up:
            c = HttpClient(up.url(), connect_timeout=5, read_timeout=0.2, headers={}, proxy=None)
            with pytest.raises(error) as err:
                await fetch(c)
            assert type(err.value) is error and err.value.kind == kind
            await c.aclose()
        assert len(up.requests) == 1

    run(go())


def test_connection_refused(run: Callable[..., Any]) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK)) as up:
            port = up.port
        c = client(f"http://127.0.0.1:{port}/api/v1")  # the server is gone: refused
        with pytest.raises(UpstreamConnectError) as err:
            await fetch(c)
        assert type(err.value) is UpstreamConnectError and err.value.kind == "connect"
        assert c.open_connections == 0
        await c.aclose()

    run(go())


@pytest.mark.parametrize(
    "value", ["socks5://u:secret@127.0.0.1:1080", "http://:secret@", "https://h:1"]
)
def test_unusable_proxy_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ConfigError) as err:
        env_proxy("https://openrouter.ai/api/v1")
    assert err.value.field == "HTTPS_PROXY" and "secret" not in str(err.value)
    assert env_proxy("http://openrouter.ai/api/v1") is None  # HTTP_PROXY is not set
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert env_proxy("https://openrouter.ai/api/v1") is None


def test_gateway_serve_refuses_an_unusable_proxy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env.update({"HTTPS_PROXY": "socks5://u:secret@127.0.0.1:1080", "NO_PROXY": ""})
    env["DEXTO_HOME"] = str(tmp_path / "home")
    argv = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve"]
    argv += ["--db", f"sqlite:///{tmp_path / 'gw.db'}", "--upstream", "https://127.0.0.1:9/api/v1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "HTTPS_PROXY" in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr + done.stdout


def _frame(body: bytes, framing: str, chunk: int) -> bytes:
    if framing == "length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    if framing == "close":
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    out += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + b"0\r\n\r\n"


@settings(max_examples=25, deadline=None)
@given(
    body=st.binary(max_size=400),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunk=st.integers(min_value=1, max_value=64),
    cuts=st.lists(st.integers(min_value=1, max_value=600), max_size=8),
)
def test_any_split_of_any_framing_reads_the_same_body(
    body: bytes, framing: str, chunk: int, cuts: list[int]
) -> None:
    raw = _frame(body, framing, chunk)
    points = sorted({c for c in cuts if c < len(raw)})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        for piece in pieces:
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0)
        if framing != "close":
            await r.read()

    async def go() -> bytes:
        async with Upstream(handler) as up:
            c = client(up.url())
            try:
                return (await fetch(c))[1]
            finally:
                await c.aclose()

    assert asyncio.run(go()) == body
