"""SSE relay: events go to the client as they arrive; the final usage chunk settles the charge.

Framing (:class:`SseRelay`) is independent of read boundaries: ``\\r\\n``, ``\\r`` and ``\\n`` line
ends are normalised to ``\\n``, an event ends at a blank line, ``data:`` with or without the
space. The terminating ``data: [DONE]``, the usage-only chunk (``choices: []``) and anything after
them are held back until the charge is committed, so a client that asks ``/me/usage`` right after
a stream ends sees it. The usage (wherever it comes) is relayed only when the client asked for it
(``stream_options.include_usage`` or ``usage.include``), with ``usage.cost`` rewritten to the amount
charged (USD, the ``X-Dexto-Cost`` figure) and the upstream's figure kept in
``usage.dexto_upstream_cost``.

If the upstream stream breaks (cut, timeout), ends without usage, the client disconnects
(upstream is then cancelled), the relay fails inside the gateway (outcome ``error``: logged, the
stream ends with an ``INTERNAL_ERROR`` event) or the task is cancelled (shutdown past the drain
deadline), the charge is settled from what is known and marked estimated:
``ceil(body_bytes / 4)`` prompt tokens plus the delivered completion tokens (tokenizer-free,
see :func:`pricing.chunk_text_tokens`, at least one per non-empty text field), at the model's
listed price, never more than the hold.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from dexto.gateway.asgi import Receive, Send
from dexto.gateway.db import describe
from dexto.gateway.fastjson import loads
from dexto.gateway.logs import log_event
from dexto.gateway.money import format_usd
from dexto.gateway.pricing import chunk_text_tokens
from dexto.gateway.splice import splice_usage
from dexto.gateway.upstream_http import UpstreamError, UpstreamResponse, UpstreamTimeout

if TYPE_CHECKING:
    from dexto.gateway.proxy import ChatCompletions, RequestContext

__all__ = ["SseRelay", "relay_stream", "rewrite_usage"]

_CUT_EVENT = (
    b'data: {"error": {"code": "UPSTREAM_STREAM_INTERRUPTED", "message": "The upstream stream '
    b'ended early; you were charged only for what was delivered (estimated).", "type": '
    b'"upstream_error"}}\n\n'
)
_ERROR_EVENT = (
    b'data: {"error": {"code": "INTERNAL_ERROR", "message": "The gateway failed to relay the '
    b'rest of this stream; you were charged only for what was delivered (estimated).", "type": '
    b'"server_error"}}\n\n'
)
_ID = re.compile(rb'"id":\s*"([^"\\]{1,200})"')
_DONE = b"data: [DONE]"
_COUNT_BATCH_BYTES = 64 * 1024  # relayed bytes kept uncounted at most (then one regex scan)


def rewrite_usage(usage: dict[str, Any], charged_micros: int) -> dict[str, Any]:
    """``usage`` with ``cost`` set to the charged amount; the upstream's figure kept aside."""
    out = dict(usage)
    if "cost" in usage:
        out["dexto_upstream_cost"] = usage["cost"]
    out["cost"] = float(format_usd(charged_micros))
    return out


class SseRelay:
    """Incremental SSE framer: ``feed`` returns the bytes to relay now; ``tail`` the held ones."""

    __slots__ = (
        "wants_usage",
        "_buf",
        "_cr",
        "usage",
        "_tokens",
        "_uncounted",
        "_uncounted_bytes",
        "done",
        "generation_id",
        "held",
    )

    def __init__(self, wants_usage: bool) -> None:
        self.wants_usage = wants_usage
        self._buf = b""
        self._cr = False  # the previous read ended with "\r" (maybe half of "\r\n")
        self.usage: dict[str, Any] | None = None
        self._tokens = 0  # estimated completion tokens of the payloads counted so far
        self._uncounted: list[bytes] = []  # relayed payloads not yet counted (one scan later)
        self._uncounted_bytes = 0
        self.done = False
        self.generation_id: str | None = None
        # raw events, or the usage chunk (parsed, and its ``data`` payload)
        self.held: list[bytes | tuple[dict[str, Any], bytes]] = []

    def feed(self, data: bytes) -> bytes:
        if self._cr or b"\r" in data:
            if self._cr and data[:1] == b"\n":
                data = data[1:]
            self._cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + data if self._buf else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return b""
        region, self._buf = buf[: end + 2], buf[end + 2 :]
        if (
            self.held
            or b"[DONE]" in region
            or b'"usage"' in region
            or b"\n\n\n" in region
            or region[:1] == b"\n"
        ):
            return self._events(region)
        # Fast path (plain events, one blank line each): relayed byte for byte, one scan.
        if self.generation_id is None:
            m = _ID.search(region)
            if m:
                self.generation_id = m.group(1).decode("utf-8", "replace")
        self._uncounted.append(region)  # as _count does, inline
        self._uncounted_bytes += len(region)
        if self._uncounted_bytes > _COUNT_BATCH_BYTES:
            self.count_tokens()
        return region

    def _count(self, data: bytes) -> None:
        self._uncounted.append(data)
        self._uncounted_bytes += len(data)
        if self._uncounted_bytes > _COUNT_BATCH_BYTES:
            self.count_tokens()

    @property
    def tokens(self) -> int:
        """Estimated completion tokens relayed (payloads are counted in batches, on demand)."""
        return self.count_tokens()

    def count_tokens(self) -> int:
        """:attr:`tokens` as a call (pass ``relay.count_tokens`` where the count may not be
        needed: the relayed payloads not yet counted are then scanned only if it is)."""
        if self._uncounted:
            self._tokens += chunk_text_tokens(b"\n".join(self._uncounted))
            self._uncounted.clear()
            self._uncounted_bytes = 0
        return self._tokens

    def finish(self) -> bytes:
        """The upstream ended: a last event without its blank line still counts."""
        rest, self._buf = self._buf.strip(b"\n"), b""
        return self._events(rest)

    def _events(self, region: bytes) -> bytes:
        events = (e.lstrip(b"\n") for e in region.split(b"\n\n"))
        return b"".join([self._event(e) for e in events if e])

    def _event(self, e: bytes) -> bytes:
        if e[:5] == b"data:" and b"\n" not in e:
            data = e[5:]
        else:
            datas = [line[5:] for line in e.split(b"\n") if line[:5] == b"data:"]
            if not datas:  # comments (": OPENROUTER PROCESSING") and other fields
                return self._out(e)
            data = b"\n".join(d[1:] if d[:1] == b" " else d for d in datas)
        if data[:1] == b" ":
            data = data[1:]
        if len(data) < 32 and data.strip() == b"[DONE]":
            self.done = True
            self.held.append(_DONE)
            return b""
        if self.generation_id is None and data[:1] == b"{":
            m = _ID.search(data)
            if m:
                self.generation_id = m.group(1).decode("utf-8", "replace")
        if b'"usage"' in data:
            try:
                doc = loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("usage"), dict):
                # The usage chunk (usually ``choices: []``, sometimes the last content chunk):
                # held, and sent at the end with the charged cost (or without usage).
                self.usage = doc["usage"]
                if doc.get("choices"):
                    self._count(data)
                self.held.append((doc, data))
                return b""
        self._count(data)
        return self._out(e)

    def _out(self, e: bytes) -> bytes:
        if self.held:  # keep the order: nothing overtakes a held event
            self.held.append(e)
            return b""
        return e + b"\n\n"

    def tail(self, charged_micros: int, *, done: bool = True) -> bytes:
        """The held events (``data: [DONE]`` left out when ``done`` is false)."""
        out: list[bytes] = []
        for item in self.held:
            if item is _DONE and not done:
                continue
            if isinstance(item, tuple):
                doc, data = item
                if self.wants_usage:
                    # The usage edited in the upstream's bytes (one line), else re-encoded.
                    usage = doc["usage"]
                    spliced = None if b"\n" in data else splice_usage(data, usage, charged_micros)
                    if spliced is not None:
                        out.append(b"data: " + spliced + b"\n\n")
                        continue
                    doc = {**doc, "usage": rewrite_usage(usage, charged_micros)}
                elif doc.get("choices"):
                    doc = {k: v for k, v in doc.items() if k != "usage"}
                else:
                    continue
                out.append(b"data: " + json.dumps(doc, ensure_ascii=False).encode() + b"\n\n")
            else:
                out.append(item + b"\n\n")
        return b"".join(out)


async def relay_stream(
    handler: ChatCompletions,
    resp: UpstreamResponse,
    receive: Receive,
    send: Send,
    ctx: RequestContext,
) -> int:
    relay = SseRelay(ctx.wants_usage)
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
    # Before the first data event goes out (comments such as ": OPENROUTER PROCESSING" are not
    # output) and before the generation id does, if it comes later, the hold records the
    # delivery and the id and that write returns (one transaction shared by the streams that
    # start together): a worker killed from then on is billed by the sweeper. After that,
    # progress each lease interval, in the background (a timer sets the flag: no clock read
    # per chunk).
    loop = asyncio.get_running_loop()
    lease = handler.lease_interval()
    state = {"due": False, "gen": False, "first": True}
    timer: asyncio.TimerHandle | None = None

    def due() -> None:
        state["due"] = True

    async def record() -> None:
        nonlocal timer
        await handler.record_delivery(ctx, relay.generation_id, relay.tokens)
        state["gen"] = relay.generation_id is not None
        if state["first"]:
            state["first"] = False
            timer = loop.call_later(lease, due)

    async def pump() -> str:
        nonlocal timer
        try:
            async for chunk in resp.aiter_raw():
                out = relay.feed(chunk)
                if out:
                    if not state["gen"] and (
                        relay.generation_id is not None or (state["first"] and b"data:" in out)
                    ):
                        await record()
                    elif state["due"]:
                        handler.note_progress(ctx, relay.generation_id, relay.tokens)
                        state["due"] = False
                        timer = loop.call_later(lease, due)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            out = relay.finish()
            if out:
                if not state["gen"] and (relay.generation_id is not None or state["first"]):
                    await record()
                await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamTimeout:
            return "timeout"
        except UpstreamError:
            return "cut"
        finally:
            if timer is not None:
                timer.cancel()
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
    except BaseException as exc:
        # Cancelled (shutdown past the drain deadline) or a bug: bill what was relayed, then go.
        pump_task.cancel()
        watch_task.cancel()
        outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
        await handler.settle_usage(ctx, relay.usage, relay.count_tokens, outcome=outcome)
        raise
    finally:
        for task in (pump_task, watch_task):
            if not task.done():
                task.cancel()
        await asyncio.gather(pump_task, watch_task, return_exceptions=True)

    failure = None
    if pump_task in done and not pump_task.cancelled():
        failure = pump_task.exception()
        outcome = "error" if failure is not None else pump_task.result()
    else:
        outcome = "client"
    if failure is not None:
        # The relay itself raised (a send, the framing, a delivery record): what went out is
        # settled below like a cut stream, never released.
        handler.state.metrics.inc("stream_relay_errors_total")
        log_event(
            handler.state.log,
            "stream relay failed",
            logging.ERROR,
            request_id=ctx.request_id,
            model=ctx.model,
            error=describe(failure),
        )
    elif outcome == "ok" and relay.usage is None:
        outcome = "no_usage"
    if outcome not in ("ok", "error"):
        handler.state.metrics.upstream_error(
            {"client": "client_disconnect", "no_usage": "stream_no_usage"}.get(
                outcome, f"stream_{outcome}"
            )
        )
    charged = await handler.settle_usage(ctx, relay.usage, relay.count_tokens, outcome=outcome)
    if outcome == "error":
        tail = relay.tail(charged.charged_micros, done=False) + _ERROR_EVENT
        try:
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except Exception as exc:  # noqa: BLE001 - settled; the connection ends unfinished
            log_event(
                handler.state.log,
                "stream relay failed at its end",
                logging.WARNING,
                request_id=ctx.request_id,
                error=describe(exc),
            )
        return 500
    if outcome != "client":
        tail = relay.tail(charged.charged_micros)
        if outcome in ("cut", "timeout") and not relay.done:
            tail += _CUT_EVENT
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    return 200 if outcome in ("ok", "no_usage") else (499 if outcome == "client" else 502)
