"""A deterministic OpenRouter-compatible fake upstream (``dexto dev fake-upstream --port P``).

Endpoints (each also under ``/v1`` and ``/api/v1``): ``POST /chat/completions`` (JSON, or SSE
opening with an ``: OPENROUTER PROCESSING`` comment and ending with a usage chunk when usage is
asked for), ``POST /responses`` (OpenRouter's Responses API: translated onto the chat path),
``GET /models`` (OpenRouter's model objects), and ``GET /_fake/stats``. Bodies carry
OpenRouter's fields (``provider``, ``system_fingerprint``, ``native_finish_reason``,
``usage.cost`` with ``cost_details``, ``prompt_tokens_details`` …) and an ``X-Generation-Id``
header; ``tests/gateway/golden/`` holds the documented shapes they are tested against.

Knobs, per request, from the JSON body's ``fake`` object (snake_case; passes through proxies
untouched), else ``X-Fake-*`` headers (kebab-case), else the server's defaults (CLI flags):

=================== ========================= ==============================================
body ``fake`` key    header                    effect
=================== ========================= ==============================================
latency_ms          X-Fake-Latency-Ms          wait before answering
chunk_delay_ms      X-Fake-Chunk-Delay-Ms      wait between stream chunks
chunks              X-Fake-Chunks              completion length in chunks/tokens (default 20)
status / error      X-Fake-Status/-Error       answer with this HTTP status (OpenRouter error)
drop_after          X-Fake-Drop-After          cut the connection after N content chunks
stream_error_after  X-Fake-Stream-Error-After  after N chunks send OpenRouter's mid-stream
                                               error event (``finish_reason: "error"``), end
malformed           X-Fake-Malformed           invalid JSON body / a malformed SSE line
hang_ms             X-Fake-Hang-Ms             hang this long before answering (timeouts)
no_usage            X-Fake-No-Usage            omit usage
no_cost             X-Fake-No-Cost             omit ``usage.cost`` and its breakdown
cost                X-Fake-Cost                report this ``usage.cost`` (USD)
=================== ========================= ==============================================

What the fake received is echoed: the response ``model`` is the requested model, and headers
``X-Fake-Model-Seen``, ``X-Fake-Auth-Seen`` (``none`` or ``sha256:<12 hex>;last4:<4>`` — never
the key), ``X-Fake-Usage-Requested`` (``usage.include`` / ``stream_options.include_usage``);
``stats.last_seen`` also holds the attribution headers received (``http-referer``,
``x-title``, ``x-openrouter-title``, ``x-openrouter-categories``). With ``tools`` in the
request, the answer is a deterministic tool call — unless the last message is a tool result
(and ``tool_choice`` is absent or ``auto``), which is answered with text so agent loops end.
"""

import argparse
import asyncio
import hashlib
import json
from typing import Any

from dexto.devtools.fake_upstream_generation import GenerationStore, serve_generation
from dexto.devtools.fake_upstream_parts import (
    ATTRIBUTION_HEADERS,
    CREATED,
    MODELS,
    DeliberateDrop,
    FakeOptions,
    FakeStats,
    auth_seen,
    chat_doc,
    chunk_line,
    delta_choice,
    err,
    knobs,
    obj,
    read_body,
    send_json,
    sleep_or_disconnect,
    tool_call,
    usage_for,
    watch_disconnect,
)
from dexto.devtools.fake_upstream_responses import serve_responses

PROCESSING = b": OPENROUTER PROCESSING\n\n"

__all__ = ["MODELS", "FakeOptions", "FakeUpstream", "add_arguments", "create_app", "main"]


class FakeUpstream:
    """The ASGI app. ``stats`` counts what happened (also at ``GET /_fake/stats``)."""

    def __init__(self, options: FakeOptions | None = None) -> None:
        self.options = options or FakeOptions()
        self.stats = FakeStats()
        self.generations = GenerationStore()  # GET /generation?id= (fake_upstream_generation)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        self.stats.requests += 1
        self.stats.paths[path] = self.stats.paths.get(path, 0) + 1
        if path in ("/models", "/v1/models", "/api/v1/models") and scope["method"] == "GET":
            await send_json(send, 200, json.dumps({"data": MODELS}).encode())
        elif path.endswith("/generation") and scope["method"] == "GET":
            await serve_generation(self.generations, scope, send)
        elif path == "/_fake/stats":
            await send_json(send, 200, json.dumps(self.stats.__dict__).encode())
        elif path in ("/chat/completions", "/v1/chat/completions", "/api/v1/chat/completions"):
            await self._chat(scope, receive, send)
        elif path in ("/responses", "/v1/responses", "/api/v1/responses"):
            await serve_responses(self._chat, scope, receive, send)
        else:
            await send_json(send, 404, err(404, "not found"))

    async def _chat(self, scope: Any, receive: Any, send: Any) -> None:
        raw = await read_body(receive)
        headers = dict(scope["headers"])
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            await send_json(send, 400, err(400, "invalid JSON body"))
            return
        opts = self.options.merged(knobs(headers, body))
        model = str(body.get("model", ""))
        usage_opt = obj(body.get("usage"))
        stream_opt = obj(body.get("stream_options"))
        echo = [
            (b"x-fake-model-seen", model.encode()[:200]),
            (b"x-fake-auth-seen", auth_seen(headers).encode()),
            (
                b"x-fake-usage-requested",
                f"include={str(bool(usage_opt.get('include'))).lower()};"
                f"stream_include_usage={str(bool(stream_opt.get('include_usage'))).lower()}".encode(),
            ),
        ]
        self.stats.last_seen = {k.decode(): v.decode() for k, v in echo}
        for name in ATTRIBUTION_HEADERS:
            if name in headers:
                self.stats.last_seen[name.decode()] = headers[name].decode("latin-1")
        wait = (opts.hang_ms or 0) + (opts.latency_ms or 0)
        if wait and await sleep_or_disconnect(receive, wait / 1000):
            return
        if opts.status >= 400:
            extra = [(b"retry-after", b"1")] if opts.status == 429 else []
            text = "Insufficient credits" if opts.status == 402 else "fake upstream error"
            await send_json(send, opts.status, err(opts.status, text), echo + extra)
            return
        if not model:
            await send_json(send, 400, err(400, "model is required"), echo)
            return
        gen_id = f"gen-{CREATED}-" + hashlib.sha256(raw).hexdigest()[:20]
        echo.append((b"x-generation-id", gen_id.encode()))
        tool = tool_call(body)
        send = self.generations.track(send, gen_id, model, body, opts)
        if body.get("stream"):
            await self._stream(send, receive, body, model, gen_id, tool, opts, echo)
            return
        if opts.malformed:
            await send_json(send, 200, b'{"id": "' + gen_id.encode() + b'", "choices": [', echo)
            return
        n = 3 if tool else max(0, opts.chunks)
        if tool:
            message: dict[str, Any] = {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_fake_0",
                        "index": 0,
                        "type": "function",
                        "function": {"name": tool[0], "arguments": tool[1]},
                    }
                ],
            }
        else:
            message = {"content": "".join(f"w{i} " for i in range(n))}
        usage = None if opts.no_usage else usage_for(body, model, n, opts)
        doc = chat_doc(gen_id, model, message, "tool_calls" if tool else "stop", usage)
        data = json.dumps(doc).encode()
        if opts.drop_after >= 0:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                        *echo,
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            raise DeliberateDrop()
        await send_json(send, 200, data, echo)

    async def _stream(
        self,
        send: Any,
        receive: Any,
        body: dict[str, Any],
        model: str,
        gen_id: str,
        tool: tuple[str, str] | None,
        opts: FakeOptions,
        echo: list[tuple[bytes, bytes]],
    ) -> None:
        self.stats.streams_started += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    *echo,
                ],
            }
        )
        # OpenRouter sends SSE comments while the provider works; clients must ignore them.
        await send({"type": "http.response.body", "body": PROCESSING, "more_body": True})
        deltas: list[dict[str, Any]]
        if tool:
            half = len(tool[1]) // 2
            deltas = [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_fake_0",
                            "type": "function",
                            "function": {"name": tool[0], "arguments": ""},
                        }
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"index": 0, "function": {"arguments": tool[1][:half]}}],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"index": 0, "function": {"arguments": tool[1][half:]}}],
                },
            ]
        else:  # OpenRouter repeats the role in every delta
            deltas = [
                {"role": "assistant", "content": f"w{i} "} for i in range(max(0, opts.chunks))
            ]
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(watch_disconnect(receive, disconnected))
        try:
            for i, delta in enumerate(deltas):
                if opts.drop_after >= 0 and i >= opts.drop_after:
                    raise DeliberateDrop()
                if opts.stream_error_after >= 0 and i >= opts.stream_error_after:
                    # OpenRouter's mid-stream error: a data event with a top-level error and
                    # finish_reason "error"; the stream then ends (no usage, no [DONE]).
                    error = {"code": "server_error", "message": "Provider disconnected"}
                    last = chunk_line(
                        gen_id, model, [delta_choice({"role": "assistant", "content": ""}, "error")]
                    )
                    last = last[:-3] + b',"error":' + json.dumps(error).encode() + b"}\n\n"
                    await send({"type": "http.response.body", "body": last, "more_body": False})
                    return
                if opts.chunk_delay_ms and i:
                    await asyncio.sleep(opts.chunk_delay_ms / 1000)
                if disconnected.is_set():
                    self.stats.streams_cancelled += 1
                    return
                line = chunk_line(gen_id, model, [delta_choice(delta)])
                await send({"type": "http.response.body", "more_body": True, "body": line})
            if opts.malformed:
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: {not json\n\n",
                        "more_body": True,
                    }
                )
            finish = "tool_calls" if tool else "stop"
            tail = chunk_line(
                gen_id, model, [delta_choice({"role": "assistant", "content": ""}, finish)]
            )
            stream_opts = body.get("stream_options")
            wants = (isinstance(stream_opts, dict) and stream_opts.get("include_usage")) or (
                isinstance(body.get("usage"), dict) and body["usage"].get("include")
            )
            if wants and not opts.no_usage and not opts.malformed:
                usage = usage_for(body, model, len(deltas), opts)
                tail += chunk_line(gen_id, model, [], usage=usage)
            if not opts.malformed:
                tail += b"data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            self.stats.streams_completed += 1
        finally:
            watcher.cancel()


def create_app(options: FakeOptions | None = None) -> FakeUpstream:
    return FakeUpstream(options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between chunks")
    parser.add_argument("--chunks", type=int, default=20, help="completion chunks/tokens")
    parser.add_argument(
        "--error",
        type=int,
        default=0,
        metavar="STATUS",
        help="answer every chat request with this HTTP status",
    )
    parser.add_argument(
        "--drop-after", type=int, default=-1, metavar="N", help="cut streams after N chunks"
    )
    parser.add_argument(
        "--stream-error-after",
        type=int,
        default=-1,
        metavar="N",
        help="send a mid-stream error event after N chunks",
    )
    parser.add_argument("--malformed", action="store_true", help="send malformed JSON/SSE")
    parser.add_argument("--hang-ms", type=float, default=0.0, help="hang before answering")
    parser.add_argument("--no-usage", action="store_true", help="omit usage")
    parser.add_argument("--no-cost", action="store_true", help="omit usage.cost")


def main(ns: argparse.Namespace) -> int:
    import uvicorn

    from dexto.devtools.fake_upstream_server import install_drop_filter

    opts = FakeOptions(
        latency_ms=ns.latency_ms,
        chunk_delay_ms=ns.chunk_delay_ms,
        chunks=ns.chunks,
        status=ns.error,
        drop_after=ns.drop_after,
        stream_error_after=ns.stream_error_after,
        malformed=ns.malformed,
        hang_ms=ns.hang_ms,
        no_usage=ns.no_usage,
        no_cost=ns.no_cost,
    )
    install_drop_filter()
    uvicorn.run(
        create_app(opts),
        host=ns.host,
        port=ns.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0
