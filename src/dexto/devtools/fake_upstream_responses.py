"""The fake upstream's ``POST /responses`` (OpenRouter's Responses API beta).

The request is translated to chat completions, answered by the fake's chat path (so every
knob works the same), and the answer translated back into a Response object or Responses SSE
events (``dexto.gateway.responses_wire``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dexto.devtools.fake_upstream_parts import err, read_body, send_json
from dexto.gateway.responses_wire import StreamTranslator, to_chat, to_response

__all__ = ["serve_responses"]

Message = MutableMapping[str, Any]
ChatHandler = Callable[[Any, Any, Any], Awaitable[None]]


async def serve_responses(chat: ChatHandler, scope: Any, receive: Any, send: Any) -> None:
    try:
        req = json.loads(await read_body(receive))
        assert isinstance(req, dict)
    except (ValueError, AssertionError):
        await send_json(send, 400, err(400, "invalid JSON body"))
        return
    problem, body = to_chat(req)
    if problem:
        await send_json(send, 400, err(400, problem))
        return
    if "usage" in req:
        body["usage"] = req["usage"]
    data = json.dumps(body).encode()
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return dict(await receive())

    state: dict[str, Any] = {"start": None, "buf": [], "stream": None}

    async def out(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            gen = headers.get(b"x-generation-id", b"gen-0").decode()
            state["id"] = "resp_" + gen.removeprefix("gen-")
            state["start"] = message
            if message["status"] == 200 and headers.get(b"content-type", b"").startswith(
                b"text/event-stream"
            ):
                state["stream"] = StreamTranslator(req, state["id"])
                await send(message)
            return
        body_bytes: bytes = message.get("body", b"")
        more = bool(message.get("more_body"))
        translator: StreamTranslator | None = state["stream"]
        if translator is not None:
            chunk = translator.feed(body_bytes)
            if not more and not translator.finished:
                chunk += translator.fail("server_error", "The stream ended early.")
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            return
        state["buf"].append(body_bytes)
        if more:
            return
        raw = b"".join(state["buf"])
        start = state["start"]
        if start["status"] == 200:
            try:
                raw = json.dumps(to_response(json.loads(raw), req, state["id"])).encode()
            except ValueError:
                pass  # the malformed knob: relay the broken body as is
        extra = [(k, v) for k, v in start.get("headers", []) if k.startswith(b"x-")]
        await send_json(send, start["status"], raw, extra)

    await chat(scope, replay, out)
