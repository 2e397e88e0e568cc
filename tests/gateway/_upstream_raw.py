"""Raw loopback upstreams for the upstream-client tests: servers whose bytes the test controls."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dexto.gateway.upstream_http import HttpClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream"], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def shutdown(server: asyncio.Server, tasks: dict[asyncio.Task[Any], Any]) -> None:
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
        await shutdown(self.server, self.tasks)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks[current_task()] = writer
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
