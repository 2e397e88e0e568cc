"""``POST /v1/responses``: the OpenAI Responses API, translated onto the chat-completions path.

The request is checked (method, key shape, content type, size, body), translated into a
chat-completions request (``responses_request.to_chat``) and run by the very same handler that
serves ``POST /v1/chat/completions`` (``proxy.ChatCompletions.run_chat``, metrics label
``route="responses"``) — same rate limit, hold, upstream call, relay and settlement, so the
charge is computed by the same code. The handler's answer is translated back on its way out:

* 200 JSON → a Response object (``usage.cost`` = the charged ``X-Dexto-Cost``); if translating
  it raises, ``502 RESPONSE_TRANSLATION_FAILED`` naming the amount charged;
* 200 SSE → Responses events, ``response.completed`` carrying the usage; an interrupted upstream
  stream ends with ``error`` + ``response.failed``; if the translator raises, the chat relay
  settles what was relayed and the stream ends with ``error`` + ``response.failed``
  (``INTERNAL_ERROR``);
* any error status → passed through unchanged (the same ``{"error": {...}}`` body and headers).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping
from typing import Any

from dexto.gateway import openapi
from dexto.gateway.accounts import looks_like_key
from dexto.gateway.asgi import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
)
from dexto.gateway.db import describe
from dexto.gateway.http_errors import error_body
from dexto.gateway.logs import log_event
from dexto.gateway.proxy import ChatCompletions
from dexto.gateway.responses_wire import StreamTranslator, to_chat, to_response
from dexto.gateway.validation import (
    BAD_CTYPE,
    INVALID_KEY,
    TOO_LARGE,
    BadJson,
    load_json,
    parse_chat,
)

__all__ = ["ResponsesEndpoint"]

ROUTE = "responses"  # the metrics label of this endpoint's requests


def _bad(message: str) -> bytes:
    return error_body("INVALID_REQUEST", message, "invalid_request_error")


class ResponsesEndpoint:
    """Raw ASGI endpoint: checks and translates, then runs ``chat.run_chat``."""

    def __init__(self, chat: ChatCompletions, max_body_bytes: int) -> None:
        self.chat = chat
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = await self._handle(scope, receive, send)
        if status is not None:  # answered here, before run_chat (which counts its own)
            self.chat.state.metrics.request(ROUTE, status, time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        """The status of an answer sent here (499: client gone), or None after ``run_chat``."""
        if scope["method"] != "POST":
            await send_bytes(
                send,
                405,
                error_body("METHOD_NOT_ALLOWED", "Use POST.", "invalid_request_error"),
                [(b"allow", b"POST")],
            )
            return 405
        headers: dict[bytes, bytes] = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        token = auth[7:].strip().decode("latin-1") if auth[:7].lower() == b"bearer " else ""
        if not looks_like_key(token):
            await send_bytes(send, 401, INVALID_KEY, [])
            return 401
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            await send_bytes(send, 415, BAD_CTYPE, [])
            return 415
        try:
            raw = await read_body(receive, self.max_body_bytes)
        except BodyTooLarge:
            await send_bytes(send, 413, TOO_LARGE, [])
            return 413
        except ClientGone:
            return 499
        try:
            req = load_json(raw)
        except BadJson as exc:
            await send_bytes(send, 400, _bad(str(exc)), [])
            return 400
        if not isinstance(req, dict):
            await send_bytes(send, 400, _bad("The request body must be a JSON object."), [])
            return 400
        problem, chat = to_chat(req)
        body = json.dumps(chat, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if not problem:
            problem = parse_chat(body)[0]
        if problem:
            await send_bytes(send, 400, _bad(problem), [])
            return 400
        out = _Out(send, req, self.chat.state.log)
        await self.chat.run_chat(scope, receive, out, body, route=ROUTE, final_status=out.status)
        return None


class _Out:
    """The ``send`` given to the chat handler: translates its answer into the Responses shape."""

    def __init__(self, send: Send, req: dict[str, Any], log: logging.Logger) -> None:
        self._send = send
        self._req = req
        self._log = log
        self._start: MutableMapping[str, Any] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._buffer: list[bytes] = []
        self._stream: StreamTranslator | None = None
        self._broken = False  # the translator raised: the stream only gets its failed ending
        self._rewritten: int | None = None  # the status sent instead of the chat handler's

    def status(self, chat_status: int) -> int:
        """The status the client got (the chat handler's, unless this wrapper replaced it)."""
        return chat_status if self._rewritten is None else self._rewritten

    def _resp_id(self) -> str:
        rid = self._headers.get(b"x-request-id", b"").decode("latin-1")
        return "resp_" + (rid.removeprefix("req_") or "0")

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            self._headers = {k.lower(): v for k, v in message.get("headers", [])}
            ctype = self._headers.get(b"content-type", b"")
            if message["status"] == 200 and ctype.startswith(b"text/event-stream"):
                self._stream = StreamTranslator(self._req, self._resp_id())
                await self._send(message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self._stream is not None:
            out = b""
            if not self._broken:
                try:
                    out = self._stream.feed(body)
                except Exception:
                    self._broken = True  # later bodies are not fed: the stream gets its end
                    raise
            if not more and not self._stream.finished:
                out += (
                    self._stream.fail("INTERNAL_ERROR", "The gateway failed to relay the stream.")
                    if self._broken
                    else self._stream.fail(
                        "UPSTREAM_STREAM_INTERRUPTED", "The upstream stream ended early."
                    )
                )
            if out or not more:
                await self._send({"type": "http.response.body", "body": out, "more_body": more})
            return
        self._buffer.append(body)
        if more:
            return
        await self._flush(b"".join(self._buffer))

    def _translated(self, data: bytes) -> bytes:
        """The chat completion (a 200 answer, already charged) as a Response object."""
        chat = json.loads(data)
        if not isinstance(chat, dict):
            raise ValueError("the chat completion is not an object")
        doc = to_response(chat, self._req, self._resp_id())
        cost = self._headers.get(b"x-dexto-cost")
        if cost is not None and isinstance(doc.get("usage"), dict):
            doc["usage"]["cost"] = float(cost)
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")

    async def _flush(self, data: bytes) -> None:
        assert self._start is not None
        start = self._start
        if int(start["status"]) == 200:
            try:
                data = self._translated(data)
            except Exception as exc:  # noqa: BLE001 - charged already: the error says so
                cost = self._headers.get(b"x-dexto-cost", b"0").decode("latin-1")
                log_event(
                    self._log,
                    "responses translation failed",
                    logging.ERROR,
                    request_id=self._headers.get(b"x-request-id", b"").decode("latin-1"),
                    error=describe(exc),
                )
                start = {**start, "status": 502}
                self._rewritten = 502
                data = error_body(
                    "RESPONSE_TRANSLATION_FAILED",
                    "The upstream's answer could not be translated into a Response object. "
                    f"You were charged ${cost} for it (X-Dexto-Cost).",
                    "upstream_error",
                )
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": data, "more_body": False})


def _register_openapi() -> None:
    string = {"type": "string"}
    nstring = {"type": "string", "nullable": True}

    def obj(props: dict[str, Any], *required: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            schema["required"] = list(required)
        return schema

    def kind(*names: str) -> dict[str, Any]:
        return {"type": "string", "enum": list(names)}

    part = {
        "anyOf": [
            obj({"type": kind("input_text", "output_text"), "text": string}, "type", "text"),
            obj(
                {"type": kind("input_image"), "image_url": string, "detail": string},
                "type",
                "image_url",
            ),
            obj(
                {"type": kind("input_file"), "filename": string, "file_data": string},
                "type",
                "file_data",
            ),
        ]
    }
    item = {
        "anyOf": [
            obj(
                {
                    "type": kind("message"),
                    "role": kind("user", "assistant", "system", "developer"),
                    "content": {"anyOf": [string, {"type": "array", "items": part}]},
                },
                "role",
                "content",
            ),
            obj(
                {
                    "type": kind("function_call"),
                    "call_id": string,
                    "name": string,
                    "arguments": string,
                },
                "type",
                "call_id",
                "name",
                "arguments",
            ),
            obj(
                {"type": kind("function_call_output"), "call_id": string, "output": string},
                "type",
                "call_id",
                "output",
            ),
        ]
    }
    tool = obj(
        {
            "type": kind("function"),
            "name": string,
            "description": string,
            "parameters": {"type": "object"},
            "strict": {"type": "boolean"},
        },
        "type",
        "name",
    )
    text_format = obj(
        {
            "type": kind("text", "json_object", "json_schema"),
            "name": string,
            "schema": {"type": "object"},
            "strict": {"type": "boolean"},
        },
        "type",
    )
    request = obj(
        {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"\S"},
            "input": {"anyOf": [string, {"type": "array", "minItems": 1, "items": item}]},
            "instructions": nstring,
            "tools": {"type": "array", "items": tool, "nullable": True},
            "tool_choice": {
                "nullable": True,
                "anyOf": [
                    kind("auto", "none", "required"),
                    obj({"type": kind("function"), "name": string}, "type", "name"),
                ],
            },
            "max_output_tokens": {"type": "integer", "minimum": 1, "nullable": True},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
            "parallel_tool_calls": {"type": "boolean", "nullable": True},
            "user": nstring,
            "text": obj({"format": text_format}),
            "reasoning": obj(
                {"effort": {**kind("minimal", "low", "medium", "high"), "nullable": True}}
            ),
            "stream": {"type": "boolean", "nullable": True},
            "metadata": {"type": "object", "additionalProperties": string, "nullable": True},
            "store": {"type": "boolean", "nullable": True},
        },
        "model",
        "input",
    )
    usage = obj(
        {
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "input_tokens_details": obj({"cached_tokens": {"type": "integer"}}),
            "output_tokens_details": obj({"reasoning_tokens": {"type": "integer"}}),
            "cost": {"type": "number"},
        },
        "input_tokens",
        "output_tokens",
        "total_tokens",
    )
    response = obj(
        {
            "id": string,
            "object": kind("response"),
            "created_at": {"type": "integer"},
            "status": kind("completed", "incomplete", "failed"),
            "error": {**obj({"code": string, "message": string}), "nullable": True},
            "incomplete_details": {**obj({"reason": string}), "nullable": True},
            "model": string,
            "output": {
                "type": "array",
                "items": obj(
                    {"type": kind("message", "function_call", "reasoning"), "id": string},
                    "type",
                    "id",
                ),
            },
            "usage": {**usage, "nullable": True},
        },
        "id",
        "object",
        "created_at",
        "status",
        "model",
        "output",
    )
    event = obj({"data": string, "event": string}, "data")
    openapi.register(
        "/v1/responses",
        "post",
        {
            "summary": "OpenAI Responses API, served through the chat-completions path and "
            "billed the same way (usage.cost = the charge)",
            "security": openapi.USER_KEY,
            "requestBody": openapi.json_body(request),
            "responses": {
                "200": {
                    "description": "A Response object (JSON), or Responses events (SSE) when "
                    "stream=true",
                    "content": {
                        "application/json": {"schema": response},
                        "text/event-stream": {"schema": event},
                    },
                },
                **openapi.errors(400, 401, 402, 405, 413, 415, 429, 502, 503, 504),
                "4XX": openapi.json_response(
                    "Any other upstream 4xx, relayed as it is; not charged",
                    {"$ref": "#/components/schemas/Error"},
                ),
            },
        },
    )


_register_openapi()
