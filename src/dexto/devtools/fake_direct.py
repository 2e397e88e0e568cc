"""Fake *direct* providers for offline tests and the demo: an OpenAI-compatible chat-completions
server, an Anthropic Messages server, and (for adapter tests) Google Gemini and Cohere v2 servers.

Each is an ASGI app (``create_app(kind)``); run one as a process with
``python -m dexto.devtools.fake_direct openai|anthropic|google|cohere --port P`` (or, once wired,
``dexto dev fake-openai|fake-anthropic``). Answers are deterministic and say what the fake saw::

    [fake-anthropic] model=claude-sonnet-4-5-20250929 key=…f4k3: you said 'hello'

``key=…`` shows only the last four characters of the credential (``key=none`` without one).
With ``tools`` in the request the answer is one call of the first tool (arguments sampled from its
schema); after a tool result it answers ``tool result: …``. Streams use each provider's own SSE
events. ``GET /_fake/requests`` lists what was received (model, key suffix, stream, path).
Knob: header ``X-Fake-Status: N`` answers with that HTTP status in the provider's error shape.
A key starting with ``bad`` is refused with 401. Like the real APIs, the Anthropic, Google and
Cohere fakes answer 400 to a request field they do not know (e.g. an OpenAI-only ``user``).
Top-level imports are stdlib only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from dexto.devtools._fake_wires import Answer, stream_events, whole

__all__ = ["KINDS", "FakeDirect", "add_arguments", "create_app", "main", "register_dev_commands"]

KINDS = ("openai", "anthropic", "google", "cohere")
_SAMPLES: dict[str, Any] = {
    "string": "fake",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content)


def _sample_args(schema: Any) -> str:
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else list(props)
    args = {k: _SAMPLES.get(str((props.get(k) or {}).get("type")), "fake") for k in required}
    return json.dumps(args, separators=(",", ":"))


def _last_turn(kind: str, body: dict[str, Any]) -> tuple[str, str | None]:
    """(last user text, tool result text or None) in the provider's message shape."""
    if kind == "google":
        contents = body.get("contents") or [{}]
        parts = contents[-1].get("parts") or []
        for p in parts:
            if "functionResponse" in p:
                return "", json.dumps(p["functionResponse"].get("response"))
        return "".join(str(p.get("text", "")) for p in parts), None
    messages = body.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":
        return "", _text(last.get("content"))
    content = last.get("content")
    if kind == "anthropic" and isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return "", _text(block.get("content"))
    return _text(content), None


def _first_tool(kind: str, body: dict[str, Any]) -> tuple[str, str] | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    if kind == "google":
        decls = tools[0].get("functionDeclarations") or [{}]
        return str(decls[0].get("name", "tool")), _sample_args(decls[0].get("parameters"))
    if kind == "anthropic":
        return str(tools[0].get("name", "tool")), _sample_args(tools[0].get("input_schema"))
    fn = tools[0].get("function") or {}
    return str(fn.get("name", "tool")), _sample_args(fn.get("parameters"))


# the request fields the real APIs document; they answer 400 to any other
_FIELDS = {
    "anthropic": {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    },
    "google": {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
    },
    "cohere": {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "stream",
    },
}
_GEMINI_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}


_COHERE_FUNCTION = {"name", "description", "parameters"}  # v2 chat: a tool's function object


def _unknown_fields(kind: str, body: dict[str, Any]) -> list[str]:
    if kind not in _FIELDS:
        return []
    unknown = sorted(set(body) - _FIELDS[kind])
    config = body.get("generationConfig")
    if kind == "google" and isinstance(config, dict):
        unknown += [f"generationConfig.{k}" for k in sorted(set(config) - _GEMINI_CONFIG)]
    if kind == "cohere" and isinstance(body.get("tools"), list):  # a tool function's fields
        for tool in body["tools"]:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict):
                unknown += sorted(set(fn) - _COHERE_FUNCTION)
    return unknown


def _error(kind: str, status: int, message: str) -> bytes:
    if kind == "anthropic":
        kind_name = "authentication_error" if status == 401 else "api_error"
        doc: dict[str, Any] = {"type": "error", "error": {"type": kind_name, "message": message}}
    elif kind == "google":
        doc = {"error": {"code": status, "message": message, "status": "FAILED"}}
    elif kind == "cohere":
        doc = {"message": message}
    else:
        doc = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return json.dumps(doc).encode()


class FakeDirect:
    """One fake provider. ``requests`` records what it received (no secrets: key suffix only)."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fake kind {kind!r}; use one of {KINDS}")
        self.kind = kind
        self.requests: list[dict[str, Any]] = []

    def _key(self, headers: dict[bytes, bytes], query: str) -> str:
        if self.kind == "anthropic":
            return headers.get(b"x-api-key", b"").decode("latin-1").strip()
        if self.kind == "google":
            found = re.search(r"(?:^|&)key=([^&]+)", query)
            raw = headers.get(b"x-goog-api-key", b"").decode("latin-1")
            return (raw or (found.group(1) if found else "")).strip()
        auth = headers.get(b"authorization", b"").decode("latin-1")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else ""

    def _route(self, path: str) -> tuple[str, bool] | None:
        """(model from the path or "", stream from the path) if ``path`` is this fake's chat."""
        if self.kind == "google":
            m = re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent)$", path)
            return (m.group(1), m.group(2).startswith("stream")) if m else None
        suffix = {"openai": "/chat/completions", "anthropic": "/messages", "cohere": "/chat"}
        return ("", False) if path.endswith(suffix[self.kind]) else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope["path"]
        if path == "/_fake/requests":
            await _send(send, 200, json.dumps({"requests": self.requests}).encode())
            return
        route = self._route(path)
        if route is None or scope["method"] != "POST":
            await _send(send, 404, _error(self.kind, 404, f"no route {path}"))
            return
        raw = await _read(receive)
        headers = dict(scope["headers"])
        status, payload = self._answer(route, raw, headers, scope.get("query_string", b""))
        if isinstance(payload, list):
            await _send_stream(send, payload)
        else:
            await _send(send, status, payload)

    def _answer(
        self, route: tuple[str, bool], raw: bytes, headers: dict[bytes, bytes], query: bytes
    ) -> tuple[int, bytes | list[bytes]]:
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return 400, _error(self.kind, 400, "invalid JSON body")
        key = self._key(headers, query.decode("latin-1"))
        model = route[0] or str(body.get("model", ""))
        stream = route[1] or bool(body.get("stream"))
        self.requests.append(
            {
                "kind": self.kind,
                "model": model,
                "stream": stream,
                "key": f"…{key[-4:]}" if key else "none",
                "tools": bool(body.get("tools")),
            }
        )
        forced = headers.get(b"x-fake-status", b"").decode()
        if forced.isdigit() and int(forced) >= 400:
            return int(forced), _error(self.kind, int(forced), "fake failure requested")
        problem = self._problem(key, body, headers)
        if problem:
            return problem
        answer = self._compose(model, key, body)
        return 200, (
            stream_events(self.kind, answer)
            if stream
            else json.dumps(whole(self.kind, answer)).encode()
        )

    def _problem(
        self, key: str, body: dict[str, Any], headers: dict[bytes, bytes]
    ) -> tuple[int, bytes] | None:
        if key.startswith("bad") or (not key and self.kind != "openai"):
            return 401, _error(self.kind, 401, "invalid API key")
        if self.kind == "anthropic" and (
            b"anthropic-version" not in headers or not isinstance(body.get("max_tokens"), int)
        ):
            return 400, _error(self.kind, 400, "anthropic-version header and max_tokens required")
        unknown = _unknown_fields(self.kind, body)
        if unknown and self.kind == "cohere":  # Cohere's wording, naming the first one
            message = f"unknown field: parameter '{unknown[0]}' is not a valid field"
            return 400, _error(self.kind, 400, message)
        if unknown:
            return 400, _error(self.kind, 400, f"{', '.join(unknown)}: unknown request field")
        return None

    def _compose(self, model: str, key: str, body: dict[str, Any]) -> Answer:
        said, tool_result = _last_turn(self.kind, body)
        who = f"[fake-{self.kind}] model={model} key={'…' + key[-4:] if key else 'none'}"
        tool = None if tool_result is not None else _first_tool(self.kind, body)
        text = (
            f"{who}: tool result {tool_result}"
            if tool_result is not None
            else ("" if tool else f"{who}: you said {said!r}")
        )
        prompt = max(1, len(json.dumps(body.get("messages") or body.get("contents") or [])) // 4)
        return Answer(model, re.findall(r"\S+\s*", text), tool, prompt)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_stream(send: Any, events: list[bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    for ev in events:
        await send({"type": "http.response.body", "body": ev, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def create_app(kind: str) -> FakeDirect:
    return FakeDirect(kind)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8800, help="port (default 8800)")


def main(ns: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        create_app(ns.kind),
        host=ns.host,
        port=ns.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


def register_dev_commands(dev_subparsers: Any) -> None:
    """Add ``fake-openai`` and ``fake-anthropic`` to ``dexto dev``."""
    for kind in ("openai", "anthropic"):
        p = dev_subparsers.add_parser(f"fake-{kind}", help=f"fake direct {kind} provider")
        add_arguments(p)
        p.set_defaults(kind=kind, handler=main)


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dexto.devtools.fake_direct")
    parser.add_argument("kind", choices=KINDS)
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_cli())
