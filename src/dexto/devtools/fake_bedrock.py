"""A fake Amazon Bedrock runtime for offline tests: the Converse API as boto3 calls it
(``POST /model/{modelId}/converse`` and ``/converse-stream``, the stream in AWS event-stream
framing), reached with ``endpoint_url`` (``BEDROCK_BASE_URL``).

It answers like the other fakes (``fake_direct``): the words it saw, or one call of the first tool
with arguments sampled from its schema, or ``tool result: …`` after a tool result. The SigV4
signature is not checked; an access key ID starting with ``bad`` is refused with 403
``UnrecognizedClientException``. ``requests`` records the model, stream, access key ID suffix,
whether tools were sent and the ``toolChoice`` received.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from typing import Any

from dexto.devtools._fake_wires import Answer
from dexto.devtools.fake_direct import _lifespan, _read, _sample_args, _send

__all__ = ["FakeBedrock", "event_message"]

_ROUTE = re.compile(r"/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream)$")


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", 7, len(raw_value))  # 7: string value
        + raw_value
    )


def event_message(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message carrying ``payload`` as the ``event_type`` event."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack("!II", 12 + len(headers) + len(body) + 4, len(headers))
    head = prelude + struct.pack("!I", binascii.crc32(prelude))
    message = head + headers + body
    return message + struct.pack("!I", binascii.crc32(message))


def _access_key(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    found = re.search(r"Credential=([^/,\s]+)/", auth)
    if found:
        return found.group(1)
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _last_turn(body: dict[str, Any]) -> tuple[str, str | None]:
    """(last user text, tool result text or None) from Converse ``messages``."""
    messages = body.get("messages") or [{}]
    blocks = messages[-1].get("content") or [] if isinstance(messages[-1], dict) else []
    for block in blocks:
        result = block.get("toolResult") if isinstance(block, dict) else None
        if isinstance(result, dict):
            parts = result.get("content") or []
            return "", "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict)), None


def _first_tool(body: dict[str, Any]) -> tuple[str, str] | None:
    tools = (body.get("toolConfig") or {}).get("tools") or []
    spec = tools[0].get("toolSpec") if tools and isinstance(tools[0], dict) else None
    if not isinstance(spec, dict):
        return None
    schema = (spec.get("inputSchema") or {}).get("json")
    return str(spec.get("name", "tool")), _sample_args(schema)


def _usage(a: Answer) -> dict[str, int]:
    return {
        "inputTokens": a.prompt_tokens,
        "outputTokens": a.completion_tokens,
        "totalTokens": a.prompt_tokens + a.completion_tokens,
    }


def _whole(a: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": a.text}] if a.text else []
    if a.tool:
        use = {"toolUseId": "tooluse_fake_0", "name": a.tool[0], "input": json.loads(a.tool[1])}
        content.append({"toolUse": use})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if a.tool else "end_turn",
        "usage": _usage(a),
        "metrics": {"latencyMs": 1},
    }


def _stream(a: Answer) -> list[bytes]:
    out = [event_message("messageStart", {"role": "assistant"})]
    index = 0
    if a.words:
        out += [
            event_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}})
            for w in a.words
        ]
        out.append(event_message("contentBlockStop", {"contentBlockIndex": 0}))
        index = 1
    if a.tool:
        start = {"toolUse": {"toolUseId": "tooluse_fake_0", "name": a.tool[0]}}
        out.append(event_message("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        half = len(a.tool[1]) // 2
        for piece in (a.tool[1][:half], a.tool[1][half:]):
            delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}
            out.append(event_message("contentBlockDelta", delta))
        out.append(event_message("contentBlockStop", {"contentBlockIndex": index}))
    out.append(event_message("messageStop", {"stopReason": "tool_use" if a.tool else "end_turn"}))
    out.append(event_message("metadata", {"usage": _usage(a), "metrics": {"latencyMs": 1}}))
    return out


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-amzn-errortype", code.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_events(send: Any, events: list[bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/vnd.amazon.eventstream")],
        }
    )
    for ev in events:
        await send({"type": "http.response.body", "body": ev, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeBedrock:
    """The fake Bedrock runtime (an ASGI app). ``requests`` records what it received."""

    kind = "bedrock"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        route = _ROUTE.search(scope["path"])
        if route is None or scope["method"] != "POST":
            await _send_error(send, 404, "UnknownOperationException", "no such operation")
            return
        try:
            body = json.loads(await _read(receive))
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            await _send_error(send, 400, "ValidationException", "invalid JSON body")
            return
        key = _access_key(dict(scope["headers"]))
        model, stream = route.group("model"), route.group("op") == "converse-stream"
        self.requests.append(
            {
                "kind": self.kind,
                "model": model,
                "stream": stream,
                "key": f"…{key[-4:]}" if key else "none",
                "tools": bool((body.get("toolConfig") or {}).get("tools")),
                "tool_choice": (body.get("toolConfig") or {}).get("toolChoice"),
            }
        )
        if not key or key.startswith("bad"):
            await _send_error(
                send,
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
            return
        answer = self._compose(model, key, body)
        if stream:
            await _send_events(send, _stream(answer))
        else:
            await _send(send, 200, json.dumps(_whole(answer)).encode())

    def _compose(self, model: str, key: str, body: dict[str, Any]) -> Answer:
        said, tool_result = _last_turn(body)
        who = f"[fake-bedrock] model={model} key=…{key[-4:]}"
        tool = None if tool_result is not None else _first_tool(body)
        text = (
            f"{who}: tool result {tool_result}"
            if tool_result is not None
            else ("" if tool else f"{who}: you said {said!r}")
        )
        prompt = max(1, len(json.dumps(body.get("messages") or [])) // 4)
        return Answer(model, re.findall(r"\S+\s*", text), tool, prompt)
