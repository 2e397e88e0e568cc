"""A deterministic OpenRouter-compatible fake upstream (``dexto dev fake-upstream --port P``).

Endpoints: ``POST /chat/completions`` and ``/v1/chat/completions`` (JSON or SSE with a final
usage chunk carrying ``usage.cost``), ``GET /models`` and ``/v1/models``, ``GET /_fake/stats``.

Knobs, per request, from the JSON body's ``fake`` object (snake_case; passes through proxies
untouched), else ``X-Fake-*`` headers (kebab-case), else the server's defaults (CLI flags):

=================== ===================== ==================================================
body ``fake`` key    header                effect
=================== ===================== ==================================================
latency_ms          X-Fake-Latency-Ms      wait before answering
chunk_delay_ms      X-Fake-Chunk-Delay-Ms  wait between stream chunks
chunks              X-Fake-Chunks          completion length in chunks/tokens (default 20)
status / error      X-Fake-Status/-Error   answer with this HTTP status (OpenRouter error body)
drop_after          X-Fake-Drop-After      cut the connection after N content chunks
malformed           X-Fake-Malformed       invalid JSON body / a malformed SSE line
hang_ms             X-Fake-Hang-Ms         hang this long before answering (timeouts)
no_usage            X-Fake-No-Usage        omit usage
no_cost             X-Fake-No-Cost         omit ``usage.cost`` (tokens only)
cost                X-Fake-Cost            report this ``usage.cost`` (USD)
=================== ===================== ==================================================

What the fake received is echoed: the response ``model`` is the requested model, and headers
``X-Fake-Model-Seen``, ``X-Fake-Auth-Seen`` (``none`` or ``sha256:<12 hex>;last4:<4>`` — never
the key), ``X-Fake-Usage-Requested`` (``usage.include`` / ``stream_options.include_usage``).
With ``tools`` in the request, the answer is a deterministic tool call.
"""

import argparse
import asyncio
import hashlib
import json
from typing import Any

from dexto.devtools.fake_upstream_generation import GenerationStore, serve_generation
from dexto.devtools.fake_upstream_parts import (
    CREATED,
    MODELS,
    DeliberateDrop,
    FakeOptions,
    FakeStats,
    auth_seen,
    err,
    knobs,
    obj,
    send_json,
    sleep_or_disconnect,
    tool_call,
    usage_for,
    watch_disconnect,
)

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
        else:
            await send_json(send, 404, err(404, "not found"))

    async def _chat(self, scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        headers = dict(scope["headers"])
        try:
            body = json.loads(b"".join(chunks))
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
        gen_id = "gen-fake-" + hashlib.sha256(b"".join(chunks)).hexdigest()[:16]
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
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_fake_0",
                        "type": "function",
                        "function": {"name": tool[0], "arguments": tool[1]},
                    }
                ],
            }
        else:
            message = {"role": "assistant", "content": "".join(f"w{i} " for i in range(n))}
        doc: dict[str, Any] = {
            "id": gen_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "provider": "Fake",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}
            ],
        }
        if not opts.no_usage:
            doc["usage"] = usage_for(body, model, n, opts)
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
        head = f'data: {{"id":"{gen_id}","object":"chat.completion.chunk","created":{CREATED},'
        head += f'"model":{json.dumps(model)},"provider":"Fake","choices":'
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
                {"tool_calls": [{"index": 0, "function": {"arguments": tool[1][:half]}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": tool[1][half:]}}]},
            ]
        else:
            deltas = [
                {"role": "assistant", "content": f"w{i} "} if i == 0 else {"content": f"w{i} "}
                for i in range(max(0, opts.chunks))
            ]
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(watch_disconnect(receive, disconnected))
        try:
            for i, delta in enumerate(deltas):
                if opts.drop_after >= 0 and i >= opts.drop_after:
                    raise DeliberateDrop()
                if opts.chunk_delay_ms and i:
                    await asyncio.sleep(opts.chunk_delay_ms / 1000)
                if disconnected.is_set():
                    self.stats.streams_cancelled += 1
                    return
                choice = json.dumps([{"index": 0, "delta": delta, "finish_reason": None}])
                await send(
                    {
                        "type": "http.response.body",
                        "more_body": True,
                        "body": (head + choice + "}\n\n").encode(),
                    }
                )
            if opts.malformed:
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: {not json\n\n",
                        "more_body": True,
                    }
                )
            finish = json.dumps(
                [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool else "stop"}]
            )
            tail = head + finish + "}\n\n"
            stream_opts = body.get("stream_options")
            wants = (isinstance(stream_opts, dict) and stream_opts.get("include_usage")) or (
                isinstance(body.get("usage"), dict) and body["usage"].get("include")
            )
            if wants and not opts.no_usage and not opts.malformed:
                usage = usage_for(body, model, len(deltas), opts)
                tail += head + "[]," + f'"usage":{json.dumps(usage)}' + "}\n\n"
            if not opts.malformed:
                tail += "data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": tail.encode(), "more_body": False})
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
