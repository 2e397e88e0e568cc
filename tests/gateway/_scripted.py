"""A scripted OpenRouter-shaped upstream for billing tests: the request says what to answer.

The request body's ``script`` object (passed through the gateway untouched; ``fake`` is read when
there is no ``script``, which is the member ``/v1/responses`` passes through) chooses the answer:
``{"json": <document>}`` → HTTP 200 with that JSON text (``raw`` instead of ``json``: these exact
bytes), ``{"sse": [<str>, …]}`` → an SSE response written in exactly those pieces (latin-1
text standing for bytes; each one its own write, with ``pause_ms`` between them).
``GET /models`` lists :data:`MODELS`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

MODELS: list[dict[str, Any]] = [
    {
        "id": "fake/cheap",
        "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0"},
        "top_provider": {"max_completion_tokens": 1000},
    },
    {
        "id": "fake/vision",
        "pricing": {"prompt": "0.000001", "completion": "0.000002", "image": "0.001"},
        "top_provider": {"max_completion_tokens": 1000},
    },
    {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
]


async def _body(receive: Any) -> bytes:
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


class ScriptedUpstream:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].endswith("/models"):
            await _send(send, 200, json.dumps({"data": MODELS}).encode(), b"application/json")
            return
        body = json.loads(await _body(receive))
        self.seen.append(body)
        script = body.get("script") or body.get("fake") or {}
        if "sse" in script:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for piece in script["sse"]:
                await send(
                    {
                        "type": "http.response.body",
                        "body": piece.encode("latin-1"),
                        "more_body": True,
                    }
                )
                await asyncio.sleep(script.get("pause_ms", 0) / 1000)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        raw = script["raw"].encode() if "raw" in script else json.dumps(script["json"]).encode()
        await _send(send, 200, raw, b"application/json")


async def _send(send: Any, status: int, data: bytes, ctype: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
