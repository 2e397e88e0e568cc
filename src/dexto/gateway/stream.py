"""SSE relay: chunks go to the client as they arrive; the final usage chunk settles the charge.

The terminating ``data: [DONE]`` is held back until the charge is committed, so a client that
asks ``/me/usage`` right after a stream ends sees it.

If the upstream stream breaks (cut, timeout) or the client disconnects (upstream is then
cancelled), the charge is settled from what is known and marked estimated:
``ceil(body_bytes / 4)`` prompt tokens plus one completion token per content chunk relayed,
at the model's listed price, never more than the hold.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from dexto.gateway.asgi import Receive, Send
from dexto.gateway.money import format_usd
from dexto.gateway.pricing import cost_from_usage, estimate_tokens_cost
from dexto.gateway.upstream_http import UpstreamError, UpstreamResponse, UpstreamTimeout

if TYPE_CHECKING:
    from dexto.gateway.proxy import ChatCompletions, RequestContext

__all__ = ["SseUsageScanner", "relay_stream"]

_CUT_EVENT = (
    b'data: {"error": {"code": "UPSTREAM_STREAM_INTERRUPTED", "message": "The upstream stream '
    b'ended early; you were charged only for what was delivered (estimated).", "type": '
    b'"upstream_error"}}\n\n'
)


class SseUsageScanner:
    """Watches the relayed bytes for ``data:`` lines; remembers the usage object and chunks."""

    __slots__ = ("_tail", "usage", "chunks", "done")

    def __init__(self) -> None:
        self._tail = b""
        self.usage: dict[str, Any] | None = None
        self.chunks = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        buf = self._tail + data
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            if b'"usage"' in line:
                try:
                    doc = json.loads(line[5:])
                except ValueError:
                    doc = None
                if isinstance(doc, dict) and isinstance(doc.get("usage"), dict):
                    self.usage = doc["usage"]
            if b'"content":"' in line or b'"content": "' in line or b'"tool_calls"' in line:
                self.chunks += 1
            elif line[5:].strip() == b"[DONE]":
                self.done = True


async def relay_stream(
    handler: ChatCompletions,
    resp: UpstreamResponse,
    receive: Receive,
    send: Send,
    ctx: RequestContext,
) -> int:
    scanner = SseUsageScanner()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                (b"x-request-id", ctx.request_id.encode()),
                (b"x-dexto-credits-remaining", format_usd(ctx.balance).encode()),
            ],
        }
    )

    held: list[bytes] = []  # "data: [DONE]" and after: sent only once the charge is settled

    async def pump() -> str:
        try:
            async for chunk in resp.aiter_raw():
                scanner.feed(chunk)
                if not held:
                    idx = chunk.find(b"data: [DONE]")
                    if idx < 0:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        continue
                    if idx:
                        await send(
                            {"type": "http.response.body", "body": chunk[:idx], "more_body": True}
                        )
                    chunk = chunk[idx:]
                held.append(chunk)
        except UpstreamTimeout:
            return "timeout"
        except UpstreamError:
            return "cut"
        return "ok"

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    pump_task = asyncio.ensure_future(pump())
    watch_task = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump_task, watch_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(pump_task, watch_task, return_exceptions=True)

    outcome = pump_task.result() if pump_task in done and not pump_task.cancelled() else "client"
    if outcome == "ok" and scanner.usage is None:
        outcome = "no_usage"
    if outcome != "ok":
        handler.state.metrics.upstream_error(
            {"client": "client_disconnect", "no_usage": "stream_no_usage"}.get(
                outcome, f"stream_{outcome}"
            )
        )
    cost, pt, ct = cost_from_usage(scanner.usage, ctx.price)
    estimated = scanner.usage is None or cost is None
    if estimated:
        pt = -(-ctx.body_len // 4)
        ct = scanner.chunks
        guess = estimate_tokens_cost(pt, ct, ctx.price)
        cost = min(ctx.hold, guess if guess is not None else ctx.hold)
    assert cost is not None
    await handler.settle(ctx, cost, pt, ct, estimated=estimated)
    if outcome != "client":
        if held:
            await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
        if outcome in ("cut", "timeout") and not scanner.done:
            await send({"type": "http.response.body", "body": _CUT_EVENT, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    return 200 if outcome in ("ok", "no_usage") else (499 if outcome == "client" else 502)
