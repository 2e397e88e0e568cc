"""``POST /v1/chat/completions``: validate, rate-limit, authorize + hold, forward, settle.

Per request the ledger is written twice: admission (authenticate the key, place the hold) and
settlement (replace the hold by the charge, or release it); a stream also records on its hold
the first delivery and, while it runs, its progress (see :mod:`dexto.gateway.settlement`). How
each write reaches the database (SQLite group commit, PostgreSQL one statement) is
:mod:`dexto.gateway.runner`'s.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dexto.gateway import ledger
from dexto.gateway.accounts import hash_key, looks_like_key
from dexto.gateway.asgi import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, send_bytes
from dexto.gateway.fastjson import dumps_compact, loads
from dexto.gateway.http_errors import error_body, insufficient_credits_body
from dexto.gateway.logs import log_event
from dexto.gateway.money import format_usd
from dexto.gateway.pricing import (
    ModelPrice,
    guard_estimate,
    message_text_tokens,
    request_shape,
)
from dexto.gateway.settlement import Settlement, uncancellable
from dexto.gateway.splice import splice_usage
from dexto.gateway.stream import relay_stream, rewrite_usage
from dexto.gateway.upstream_http import UpstreamError, UpstreamResponse, UpstreamTimeout
from dexto.gateway.validation import (
    BAD_CTYPE,
    INVALID_KEY,
    TOO_LARGE,
    is_json,
    json_content_type,
    max_tokens,
    parse_chat,
)

__all__ = ["ChatCompletions", "RequestContext"]

_FORWARD_HEADERS = (
    b"http-referer",
    b"x-title",
    b"x-openrouter-title",
    b"x-openrouter-categories",
)
_RECORDED = {
    b"x-dexto-session-id": "session_id",
    b"x-dexto-source": "source",
    b"x-dexto-version": "client_version",
}


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float
    model: str = ""
    stream: bool = False
    price: ModelPrice | None = None
    hold: int = 0
    account_id: str = ""
    key_id: str = ""
    balance: int = 0
    available: int = 0
    session_id: str | None = None
    source: str | None = None
    client_version: str | None = None
    wants_usage: bool = False  # the client asked for usage in the stream (include_usage)
    prompt_estimate: int = 0  # ceil(body bytes / 4): prompt tokens when the upstream says none
    settling: bool = False  # settlement started: the hold is no longer released on errors


def _clean(value: bytes) -> str:
    text = value.decode("latin-1")[:200]
    return "".join(c for c in text if c.isprintable())


def _bearer(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"")
    return auth[7:].strip().decode("latin-1") if auth[:7].lower() == b"bearer " else ""


def _wants_usage(payload: dict[str, Any]) -> bool:
    opts = payload.get("stream_options")
    usage = payload.get("usage")
    return bool(
        (isinstance(opts, dict) and opts.get("include_usage"))
        or (isinstance(usage, dict) and usage.get("include"))
    )


class ChatCompletions(Settlement):
    """Raw ASGI endpoint (the hot path avoids framework request/response objects).

    :meth:`run_chat` is the stable internal entry point: one chat-completions request body
    through admission → upstream → relay → settlement, answering on ``send`` exactly as
    ``POST /v1/chat/completions`` does.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = RequestContext(request_id="req_" + os.urandom(12).hex(), started=time.perf_counter())
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            status = await self._handle(scope, receive, send, ctx)
        finally:
            self.active.discard(task)
        elapsed = time.perf_counter() - ctx.started
        self.state.metrics.request("chat_completions", status, elapsed)

    async def run_chat(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes,
        *,
        route: str = "chat_completions",
        request_id: str | None = None,
        final_status: Callable[[int], int] | None = None,
    ) -> int:
        """Run one chat-completions request whose body was already read (e.g. translated from
        another API): auth, validation, rate limit, hold, upstream, relay, settlement. The
        answer (JSON, SSE or an error) goes to ``send``; returns the HTTP status sent, as
        ``final_status`` maps it when given (a ``send`` wrapper that changed the status)."""
        ctx = RequestContext(
            request_id=request_id or "req_" + os.urandom(12).hex(), started=time.perf_counter()
        )
        headers: dict[bytes, bytes] = dict(scope["headers"])
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            token = _bearer(headers)
            early = self._precheck(token, headers)
            if early is not None:
                status = await self._fail(send, ctx, *early)
            elif len(body) > self.state.settings.max_body_bytes:
                status = await self._fail(send, ctx, 413, TOO_LARGE)
            else:
                status = await self._run(token, headers, body, receive, send, ctx)
        finally:
            self.active.discard(task)
        if final_status is not None:
            status = final_status(status)
        self.state.metrics.request(route, status, time.perf_counter() - ctx.started)
        return status

    async def _fail(
        self,
        send: Send,
        ctx: RequestContext,
        status: int,
        body: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        headers = [(b"x-request-id", ctx.request_id.encode()), *(extra or [])]
        await send_bytes(send, status, body, headers)
        log_event(
            self.state.log,
            "chat.completions",
            request_id=ctx.request_id,
            account=ctx.account_id or None,
            model=ctx.model or None,
            status=status,
            latency_ms=round((time.perf_counter() - ctx.started) * 1000, 2),
        )
        return status

    async def _handle(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> int:
        settings = self.state.settings
        if scope["method"] != "POST":
            return await self._fail(
                send,
                ctx,
                405,
                error_body("METHOD_NOT_ALLOWED", "Use POST.", "invalid_request_error"),
                [(b"allow", b"POST")],
            )
        headers: dict[bytes, bytes] = dict(scope["headers"])
        token = _bearer(headers)
        early = self._precheck(token, headers)
        if early is not None:
            return await self._fail(send, ctx, *early)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return await self._fail(send, ctx, 413, TOO_LARGE)
        try:
            raw = await read_body(receive, settings.max_body_bytes)
        except BodyTooLarge:
            return await self._fail(send, ctx, 413, TOO_LARGE)
        except ClientGone:
            return 499
        return await self._run(token, headers, raw, receive, send, ctx)

    @staticmethod
    def _precheck(token: str, headers: dict[bytes, bytes]) -> tuple[int, bytes] | None:
        if not looks_like_key(token):
            return 401, INVALID_KEY
        if not json_content_type(headers.get(b"content-type", b"")):
            return 415, BAD_CTYPE
        return None

    async def _run(
        self,
        token: str,
        headers: dict[bytes, bytes],
        raw: bytes,
        receive: Receive,
        send: Send,
        ctx: RequestContext,
    ) -> int:
        st = self.state
        settings = st.settings
        problem, payload = parse_chat(raw)
        if problem:
            return await self._fail(
                send, ctx, 400, error_body("INVALID_REQUEST", problem, "invalid_request_error")
            )
        ctx.model, ctx.stream = payload["model"], bool(payload.get("stream"))
        ctx.wants_usage = _wants_usage(payload)
        ctx.prompt_estimate = -(-len(raw) // 4)
        for name, attr in _RECORDED.items():
            if name in headers:
                setattr(ctx, attr, _clean(headers[name]) or None)

        key_hash = hash_key(token)
        wait = await st.limiter.acquire(key_hash[:32])
        if wait > 0:
            st.metrics.inc("rate_limited_total")
            return await self._fail(
                send,
                ctx,
                429,
                error_body(
                    "RATE_LIMITED",
                    "Too many requests for this key; retry later.",
                    "rate_limit_error",
                ),
                [(b"retry-after", str(max(1, math.ceil(wait))).encode())],
            )
        ctx.price = await st.catalog.price(ctx.model)
        ctx.hold = guard_estimate(
            len(raw),
            max_tokens(payload),
            ctx.price,
            min_hold=settings.min_hold_usd_micros,
            default_max_tokens=settings.default_max_tokens,
            unknown_model_hold=settings.unknown_model_hold_micros,
            shape=request_shape(payload),
        )
        # From here on the request may own a hold: every exit settles or releases it.
        try:
            # A non-streaming request may be admitted on this worker's reservation for the key
            # (reservations.py); otherwise it places a hold of its own.
            res = (
                None if ctx.stream else self.reservations.admit(key_hash, ctx.request_id, ctx.hold)
            )
            own_hold = res is None
            if res is None:
                # DbRunner.run finishes a call even if this task is cancelled meanwhile and
                # passes the cancel on afterwards: the hold's state is known in the except below.
                res = await st.runner.run(
                    ledger.admit,
                    key_hash,
                    ctx.request_id,
                    ctx.hold,
                    ttl_ms=settings.hold_ttl_s * 1000,
                    model=ctx.model,
                    prompt_tokens=ctx.prompt_estimate,
                )
            if res.status == "invalid_key":
                return await self._fail(send, ctx, 401, INVALID_KEY)
            ctx.account_id, ctx.key_id = res.account_id, res.key_id
            ctx.balance, ctx.available = res.balance_micros, res.available_micros
            if res.status == "insufficient":
                st.metrics.inc("insufficient_credits_total")
                return await self._fail(
                    send,
                    ctx,
                    402,
                    insufficient_credits_body(res.balance_micros, ctx.hold),
                    [(b"x-dexto-credits-remaining", format_usd(res.balance_micros).encode())],
                )
            st.metrics.inc("holds_placed_total")
            if own_hold:
                self.leases.hold(ctx.request_id)
                if not ctx.stream:
                    self.reservations.admitted(key_hash, ctx.model, ctx.hold, res)
            try:
                return await self._forward(payload, headers, receive, send, ctx)
            finally:
                self.leases.end(ctx.request_id)
        except BaseException:
            # Anything unexpected (incl. cancellation) before settlement started: release.
            if not ctx.settling:
                await uncancellable(self._release(ctx))
            raise
        finally:
            self.reservations.ended(ctx.request_id)

    async def _release(self, ctx: RequestContext) -> None:
        if self.reservations.released(ctx.request_id) or await self.state.runner.run(
            ledger.release, ctx.request_id
        ):
            self.state.metrics.inc("holds_released_total")

    async def _forward(
        self,
        payload: dict[str, Any],
        headers: dict[bytes, bytes],
        receive: Receive,
        send: Send,
        ctx: RequestContext,
    ) -> int:
        st = self.state
        usage = payload.get("usage")
        payload["usage"] = {**(usage if isinstance(usage, dict) else {}), "include": True}
        if ctx.stream:
            opts = payload.get("stream_options")
            payload["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        body = dumps_compact(payload)
        fwd = {k.decode(): _clean(headers[k]) for k in _FORWARD_HEADERS if k in headers}
        try:
            resp = await st.upstream.open_chat(body, fwd)
        except UpstreamTimeout as exc:
            return await self._upstream_failed(send, ctx, 504, exc.kind)
        except UpstreamError as exc:
            return await self._upstream_failed(send, ctx, 502, exc.kind)
        try:
            if resp.status_code >= 400:
                return await self._upstream_status(resp, send, ctx)
            is_sse = resp.headers.get("content-type", "").startswith("text/event-stream")
            if ctx.stream and is_sse:
                return await relay_stream(self, resp, receive, send, ctx)
            try:
                data = await resp.aread()
            except UpstreamTimeout:
                return await self._upstream_failed(send, ctx, 504, "timeout")
            except UpstreamError as exc:
                return await self._upstream_failed(send, ctx, 502, f"read_{exc.kind}")
            return await self._complete(data, resp, send, ctx)
        finally:
            await resp.aclose()

    async def _complete(
        self, data: bytes, resp: UpstreamResponse, send: Send, ctx: RequestContext
    ) -> int:
        try:
            doc = loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            return await self._upstream_failed(send, ctx, 502, "malformed")
        usage = doc.get("usage")

        def delivered() -> int:
            choices = doc.get("choices")
            return sum(
                message_text_tokens(c.get("message")) if isinstance(c, dict) else 0
                for c in (choices if isinstance(choices, list) else ())
            )

        result = await self.settle_usage(ctx, usage, delivered)
        if isinstance(usage, dict):
            # The charged amount is what the client sees (the upstream's figure kept aside):
            # the usage member replaced in place, else the whole document re-encoded.
            spliced = splice_usage(data, usage, result.charged_micros)
            if spliced is None:
                doc["usage"] = rewrite_usage(usage, result.charged_micros)
                spliced = json.dumps(doc, ensure_ascii=False).encode("utf-8")
            data = spliced
        await send_bytes(
            send,
            200,
            data,
            [
                (b"x-request-id", ctx.request_id.encode()),
                (b"x-dexto-cost", format_usd(result.charged_micros).encode()),
                (b"x-dexto-credits-remaining", format_usd(result.balance_micros).encode()),
            ],
            content_type=resp.headers.get("content-type", "application/json").encode("latin-1"),
        )
        return 200

    async def _upstream_failed(
        self, send: Send, ctx: RequestContext, status: int, kind: str
    ) -> int:
        self.state.metrics.upstream_error(kind)
        await self._release(ctx)
        message = (
            "The upstream provider timed out; you were not charged."
            if status == 504
            else "The upstream provider failed; you were not charged."
        )
        code = "UPSTREAM_TIMEOUT" if status == 504 else "UPSTREAM_ERROR"
        return await self._fail(send, ctx, status, error_body(code, message, "upstream_error"))

    async def _upstream_status(
        self, resp: UpstreamResponse, send: Send, ctx: RequestContext
    ) -> int:
        status = resp.status_code
        try:
            data = await resp.aread()
        except UpstreamError:
            data = b""
        if status >= 500 or status in (401, 402, 403):
            # 5xx, and 401/402/403 which concern the gateway's own upstream account: redacted.
            kind = f"http_{status}"
            self.state.metrics.upstream_error(kind)
            await self._release(ctx)
            return await self._fail(
                send,
                ctx,
                502,
                error_body(
                    "UPSTREAM_ERROR",
                    f"The upstream provider failed (HTTP {status}); you were not charged.",
                    "upstream_error",
                ),
            )
        self.state.metrics.upstream_error("http_4xx")
        await self._release(ctx)
        extra = []
        if "retry-after" in resp.headers:
            extra.append((b"retry-after", resp.headers["retry-after"].encode("latin-1")))
        if not is_json(data):
            data = error_body(
                "UPSTREAM_REJECTED",
                f"The upstream provider refused the request (HTTP {status}).",
                "invalid_request_error",
            )
        return await self._fail(send, ctx, status, data, extra)
