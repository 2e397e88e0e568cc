"""Pure translation between the OpenAI Responses API and chat completions (no I/O).

``to_chat(doc)`` (from :mod:`responses_request`) turns a Responses request into a
chat-completions request (or names the field that cannot be translated); ``to_response(chat,
...)`` turns a chat completion into a Response object; ``StreamTranslator`` turns
chat-completion SSE chunks into Responses SSE events.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dexto.gateway.pricing import MAX_TOKENS
from dexto.gateway.responses_request import dumps_compact_text as _dumps
from dexto.gateway.responses_request import to_chat

__all__ = ["StreamTranslator", "to_chat", "to_response", "usage_of"]


def _count(value: Any) -> int:
    """A token count: an integer (or integral float) in ``[0, MAX_TOKENS]``, else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= MAX_TOKENS else 0


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Chat-completions usage → Responses usage (``cost`` kept when present); counts that are
    not integers in range are 0, a total that is not is input + output."""
    if not isinstance(usage, dict):
        return None
    pt = _count(usage.get("prompt_tokens"))
    ct = _count(usage.get("completion_tokens"))
    ptd = usage.get("prompt_tokens_details")
    ctd = usage.get("completion_tokens_details")
    out: dict[str, Any] = {
        "input_tokens": pt,
        "input_tokens_details": {
            "cached_tokens": _count(ptd.get("cached_tokens")) if isinstance(ptd, dict) else 0
        },
        "output_tokens": ct,
        "output_tokens_details": {
            "reasoning_tokens": _count(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else 0
        },
        "total_tokens": _count(usage.get("total_tokens")) or pt + ct,
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


def _status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _shell(req: dict[str, Any], resp_id: str, created: int, model: str) -> dict[str, Any]:
    """The Response object's fields that echo the request."""
    text = req.get("text") if isinstance(req.get("text"), dict) else {"format": {"type": "text"}}
    reasoning: dict[str, Any] = req["reasoning"] if isinstance(req.get("reasoning"), dict) else {}
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": False,
        "temperature": req.get("temperature"),
        "text": text,
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": req.get("user"),
        "metadata": req.get("metadata") if isinstance(req.get("metadata"), dict) else {},
    }


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(item_id: str, call_id: str, name: str, args: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": args,
        "status": "completed",
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": text}]}


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def to_response(chat: dict[str, Any], req: dict[str, Any], resp_id: str) -> dict[str, Any]:
    """A chat completion (already charged) as a Response object. Members of an unexpected type
    are left out (an item, a tool call) or replaced by their default (a string, a count)."""
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    created = chat.get("created")
    created = created if isinstance(created, int) and not isinstance(created, bool) else None
    out = _shell(req, resp_id, int(time.time()) if created is None else created, "")
    out["model"] = _text(chat.get("model")) or _text(req.get("model"))
    tail = resp_id.removeprefix("resp_")
    output: list[dict[str, Any]] = []
    if isinstance(message.get("reasoning"), str) and message["reasoning"]:
        output.append(_reasoning_item(f"rs_{tail}", message["reasoning"]))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(_message_item(f"msg_{tail}", message["content"]))
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            output.append(
                _call_item(
                    f"fc_{tail}_{i}",
                    _text(call.get("id")) or f"call_{tail}_{i}",
                    _text(fn.get("name")),
                    _text(fn.get("arguments")),
                )
            )
    out["output"] = output
    finish = choice.get("finish_reason")
    out["status"], out["incomplete_details"] = _status(finish if isinstance(finish, str) else None)
    out["usage"] = usage_of(chat.get("usage"))
    return out


class StreamTranslator:
    """Feed chat-completion SSE bytes; get Responses SSE bytes back (``event:`` + ``data:``)."""

    def __init__(self, req: dict[str, Any], resp_id: str) -> None:
        self.req = req
        self.resp_id = resp_id
        self._tail_id = resp_id.removeprefix("resp_")
        self._buf = b""
        self._seq = 0
        self._started = False
        self.finished = False
        self._response = _shell(req, resp_id, int(time.time()), str(req.get("model", "")))
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the open message item
        self._reasoning: dict[str, Any] | None = None
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool_call index → open item
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        doc = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return f"event: {kind}\ndata: {_dumps(doc)}\n\n".encode()

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        created = chunk.get("created")
        if isinstance(created, int) and not isinstance(created, bool):
            self._response["created_at"] = created
        if isinstance(chunk.get("model"), str):
            self._response["model"] = chunk["model"]
        snap = dict(self._response)
        return [
            self._event("response.created", response=snap),
            self._event("response.in_progress", response=snap),
        ]

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out: list[bytes] = []
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue  # blank separators and ": OPENROUTER PROCESSING" comments
            payload = line[5:].strip()
            if payload == b"[DONE]":
                out.extend(self.finish())
                continue
            try:
                chunk = json.loads(payload)
            except (ValueError, RecursionError):  # not JSON, or nested too deeply: skipped
                continue
            if isinstance(chunk, dict):
                out.extend(self._chunk(chunk))
        return b"".join(out)

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.finished:
            return []
        out = self._start(chunk)
        if isinstance(chunk.get("error"), dict):
            return out + self._fail(chunk["error"])
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return out
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        assert isinstance(delta, dict)
        reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._reasoning_delta(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._text_delta(content)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                out += self._call_delta(call)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._finish = finish
        return out

    def _reasoning_delta(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._reasoning is None:
            item: dict[str, Any] = {"type": "reasoning", "id": f"rs_{self._tail_id}"}
            item["summary"], item["_text"] = [], ""
            self._reasoning = item
            self._output.append(item)
            out.append(self._added(item))
        self._reasoning["_text"] += text
        idx = self._output.index(self._reasoning)
        out.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=self._reasoning["id"],
                output_index=idx,
                summary_index=0,
                delta=text,
            )
        )
        return out

    def _added(self, item: dict[str, Any]) -> bytes:
        public = {k: v for k, v in item.items() if not k.startswith("_")}
        public["status"] = "in_progress"
        if item["type"] == "message":
            public["content"] = []
        elif item["type"] == "function_call":
            public["arguments"] = ""
        elif item["type"] == "reasoning":
            public["summary"] = []
            public.pop("status")
        return self._event(
            "response.output_item.added", output_index=self._output.index(item), item=public
        )

    def _text_delta(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._text is None:
            item = {"type": "message", "id": f"msg_{self._tail_id}", "role": "assistant"}
            item["_text"] = ""
            self._text = item
            self._output.append(item)
            idx = len(self._output) - 1
            out.append(self._added(item))
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=idx,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            )
        self._text["_text"] += text
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=self._text["id"],
                output_index=self._output.index(self._text),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        if index is None:
            index = 0
        if not isinstance(index, int) or isinstance(index, bool):
            return out  # a call piece whose index is not an integer: skipped
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(fn, dict)
        item = self._calls.get(index)
        if item is None:
            n = len(self._calls)
            item = {
                "type": "function_call",
                "id": f"fc_{self._tail_id}_{n}",
                "call_id": _text(call.get("id")) or f"call_{self._tail_id}_{n}",
                "name": _text(fn.get("name")),
                "_args": "",
            }
            self._calls[index] = item
            self._output.append(item)
            out.append(self._added(item))
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item["_args"] += args
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._output.index(item),
                    delta=args,
                )
            )
        return out

    def _final_items(self) -> tuple[list[bytes], list[dict[str, Any]]]:
        events: list[bytes] = []
        final: list[dict[str, Any]] = []
        for idx, item in enumerate(self._output):
            if item["type"] == "message":
                text = item["_text"]
                done = _message_item(item["id"], text)
                part = done["content"][0]
                events.append(
                    self._event(
                        "response.output_text.done",
                        item_id=item["id"],
                        output_index=idx,
                        content_index=0,
                        text=text,
                        logprobs=[],
                    )
                )
                events.append(
                    self._event(
                        "response.content_part.done",
                        item_id=item["id"],
                        output_index=idx,
                        content_index=0,
                        part=part,
                    )
                )
            elif item["type"] == "function_call":
                done = _call_item(item["id"], item["call_id"], item["name"], item["_args"])
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=idx,
                        name=item["name"],
                        arguments=item["_args"],
                    )
                )
            else:
                done = _reasoning_item(item["id"], item["_text"])
                events.append(
                    self._event(
                        "response.reasoning_summary_text.done",
                        item_id=item["id"],
                        output_index=idx,
                        summary_index=0,
                        text=item["_text"],
                    )
                )
            events.append(self._event("response.output_item.done", output_index=idx, item=done))
            final.append(done)
        return events, final

    def finish(self) -> list[bytes]:
        """Close every open item and emit ``response.completed`` (or ``.incomplete``)."""
        if self.finished:
            return []
        out = self._start({})
        events, final = self._final_items()
        self.finished = True
        resp = self._response
        resp["output"] = final
        resp["status"], resp["incomplete_details"] = _status(self._finish)
        resp["usage"] = usage_of(self._usage)
        kind = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        return out + events + [self._event(kind, response=resp)]

    def _fail(self, error: dict[str, Any]) -> list[bytes]:
        self.finished = True
        code = error.get("code")
        code = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
        message = _text(error.get("message")) or "The upstream stream failed."
        resp = self._response
        resp["status"] = "failed"
        resp["error"] = {"code": str(code or "server_error"), "message": message}
        resp["usage"] = usage_of(self._usage)
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=resp),
        ]

    def fail(self, code: str, message: str) -> bytes:
        """The stream ended without ``[DONE]`` (upstream cut): a ``response.failed`` ending."""
        if self.finished:
            return b""
        return b"".join(self._start({}) + self._fail({"code": code, "message": message}))
