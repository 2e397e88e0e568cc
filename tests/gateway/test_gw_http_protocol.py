"""CoalescingHttpToolsProtocol on a real uvicorn server: a fixed-length response's head goes out
with its body; the bytes on the wire are uvicorn's httptools protocol's own."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

from dexto.cli._http_protocol import CoalescingHttpToolsProtocol

PROTOCOLS: list[Any] = ["httptools", CoalescingHttpToolsProtocol]


class _App:
    """Sends a head, signals ``started``, waits for ``gate``, then the rest (by path)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/chunked":
            headers = [(b"content-type", b"text/plain")]
        else:
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        if path == "/close":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started.set()
        await self.gate.wait()
        if path == "/fail":
            raise KeyError("boom")
        if path == "/chunked":
            await send({"type": "http.response.body", "body": b"he", "more_body": True})
        rest = b"llo" if path == "/chunked" else b"hello"
        await send({"type": "http.response.body", "body": rest})


@asynccontextmanager
async def _serve(app: _App, http: Any) -> AsyncIterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", http=http
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await serving


def _available(sock: socket.socket) -> bytes:
    """What the server has written so far (writes to loopback arrive before they return)."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""


async def _read_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    while chunk := await loop.sock_recv(sock, 65536):
        out += chunk
    return out


async def _exchange(http: Any, method: str, path: str) -> tuple[bytes, bytes]:
    """(bytes on the wire once the app sent its head, all bytes until the server closed)."""
    app = _App()
    loop = asyncio.get_running_loop()
    async with _serve(app, http) as port:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            request = f"{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
            await loop.sock_sendall(sock, request.encode())
            await app.started.wait()
            await asyncio.sleep(0)  # uvicorn's send has returned
            early = _available(sock)
            app.gate.set()
            return early, early + await _read_all(sock)
        finally:
            sock.close()


def _no_date(raw: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", raw)


@pytest.mark.parametrize("path", ["/fixed", "/close", "/chunked", "/fail"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_same_bytes_as_uvicorns_httptools(method: str, path: str) -> None:
    async def both() -> tuple[bytes, bytes]:
        plain = (await _exchange("httptools", method, path))[1]
        ours = (await _exchange(CoalescingHttpToolsProtocol, method, path))[1]
        return plain, ours

    plain, ours = asyncio.run(both())
    assert _no_date(ours) == _no_date(plain)
    assert plain.startswith(b"HTTP/1.1 200 OK\r\n")


def test_fixed_length_head_waits_for_the_body() -> None:
    early, whole = asyncio.run(_exchange(CoalescingHttpToolsProtocol, "GET", "/fixed"))
    assert early == b""
    assert whole.endswith(b"content-length: 5\r\nconnection: close\r\n\r\nhello")


@pytest.mark.parametrize(("method", "path"), [("GET", "/chunked"), ("HEAD", "/fixed")])
def test_chunked_and_head_responses_start_at_once(method: str, path: str) -> None:
    early, _ = asyncio.run(_exchange(CoalescingHttpToolsProtocol, method, path))
    assert early.startswith(b"HTTP/1.1 200 OK\r\n")
    assert early.endswith(b"\r\n\r\n")


def test_failure_after_start_still_sends_the_head_then_closes() -> None:
    early, whole = asyncio.run(_exchange(CoalescingHttpToolsProtocol, "GET", "/fail"))
    assert early == b""
    assert whole.startswith(b"HTTP/1.1 200 OK\r\n")
    assert whole.endswith(b"content-length: 5\r\nconnection: close\r\n\r\n")


def test_keep_alive_requests_on_one_connection() -> None:
    async def scenario() -> list[bytes]:
        app = _App()
        app.gate.set()
        answers = []
        async with _serve(app, CoalescingHttpToolsProtocol) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                writer.write(b"GET /fixed HTTP/1.1\r\nhost: t\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                answers.append(head + await reader.readexactly(5))
            writer.close()
            await writer.wait_closed()
        return answers

    answers = asyncio.run(scenario())
    assert [a.endswith(b"\r\n\r\nhello") for a in answers] == [True, True, True]
