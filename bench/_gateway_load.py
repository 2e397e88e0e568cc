"""A lean HTTP/1.1 keep-alive load generator on asyncio (so the client is not the bottleneck).

Only what the benchmark needs: POST with a fixed body, Content-Length or chunked responses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["LoadResult", "chat_body", "run_load", "run_loop"]

MODEL = "openai/gpt-4o-mini"


def chat_body(stream: bool = False) -> bytes:
    """The benchmarks' chat request: one short prompt, 64 tokens at most."""
    doc: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello in one line."}],
    }
    if stream:
        doc["stream"] = True
    return json.dumps(doc).encode()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, per request
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length >= 0:
        await reader.readexactly(length)
    else:
        await reader.read()  # until close
    return status


async def _worker(
    host: str, port: int, request: bytes, counter: list[int], total: int, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while counter[0] < total:
            counter[0] += 1
            t0 = time.perf_counter()
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            dt = time.perf_counter() - t0
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.latencies.append(dt)
            else:
                result.errors += 1
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    concurrency: int,
    total: int,
) -> LoadResult:
    request = build_request(host, port, path, body, headers)

    async def main() -> LoadResult:
        result = LoadResult()
        counter = [0]
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_worker(host, port, request, counter, total, result) for _ in range(concurrency))
        )
        result.elapsed = time.perf_counter() - t0
        return result

    return run_loop(main())


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop (asyncio's loop when uvloop is missing): every load client of the
    benchmarks runs on the same loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)
