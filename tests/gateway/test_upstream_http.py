"""The upstream HTTP/1.1 client against real sockets on loopback: framing, keep-alive, retries,
the connection cap, back-pressure and each error class.

Each upstream is a raw asyncio server whose bytes the test controls (framing, splits, closes,
silence). Every test runs on both the stdlib event loop and uvloop (what the gateway serves on).
TLS and proxies: test_upstream_http_tls_proxy.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from _upstream_raw import OK, Handler, Upstream, client, fetch, keep_alive
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.gateway.upstream_http import (
    HttpClient,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamPoolTimeout,
    UpstreamProtocolError,
    UpstreamTimeout,
)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


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


def test_chunks_read_together_are_handed_on_as_one_piece(run: Callable[..., Any]) -> None:
    events = [b"data: %d\n\n" % i for i in range(5)]

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: Upstream) -> None:
        await up.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await w.drain()
        await r.readexactly(1)  # the client has the headers: now the chunks, in one write
        w.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n")
        await w.drain()
        await r.read()

    async def go() -> None:
        async with Upstream(handler) as up:
            c = client(up.url())
            resp = await c.request("POST", "chat/completions", b"{}")
            proto = resp._proto
            assert proto.transport is not None
            proto.transport.write(b"x")  # (the raw upstream reads one byte as the go-ahead)
            while not proto.complete:  # all five chunks parsed before the consumer reads
                await proto.wait(5)
            assert len(proto.chunks) == 5
            got = [x async for x in resp.aiter_raw()]
            assert got == [b"".join(events)]
            assert proto.buffered == 0 and not proto.chunks
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
