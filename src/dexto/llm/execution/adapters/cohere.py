"""Cohere v2 chat (``POST {base}/chat``; OpenAI-like messages and tools, its own reply and
stream event shapes: ``content-delta``, ``tool-call-start|delta``, ``message-end``)."""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import body_error
from dexto.llm.execution._messages import content_text
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int

__all__ = ["CohereAdapter", "to_cohere"]

_STOP = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "TOOL_CALL": "tool_calls",
    "MAX_TOKENS": "length",
}
_PARAMS = {
    "top_p": "p",
    "top_k": "k",
    "stop": "stop_sequences",
    "max_completion_tokens": "max_tokens",
}


def _finish(reason: Any) -> str | None:
    return _STOP.get(reason, reason.lower()) if isinstance(reason, str) else None


def to_cohere(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        item: dict[str, Any] = {"role": role}
        text = content_text(m.get("content"))
        if role == "tool":
            item.update(tool_call_id=m.get("tool_call_id", ""), content=text)
        elif role == "assistant" and m.get("tool_calls"):
            item["tool_calls"] = m["tool_calls"]
            if text:
                item["tool_plan"] = text
        else:
            item["content"] = text
        out.append(item)
    return out


def _usage(reply: Reply, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    reply.prompt_tokens = as_int(tokens.get("input_tokens"))
    reply.completion_tokens = as_int(tokens.get("output_tokens"))


class _Stream(StreamState):
    def feed(self, event: str, data: str) -> list[Delta]:
        try:
            ev = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{self._target.label} sent a stream event that is not JSON",
                fix="retry the request",
            ) from None
        if not isinstance(ev, dict):
            return []
        kind = ev.get("type")
        msg = (ev.get("delta") or {}).get("message") or {}
        if kind == "content-delta":
            text = (msg.get("content") or {}).get("text") or ""
            if text:
                self._text.append(text)
                return [TextDelta(text)]
        elif kind in ("tool-call-start", "tool-call-delta"):
            tc = msg.get("tool_calls") or {}
            fn = tc.get("function") or {}
            return [
                self._tools.add(
                    as_int(ev.get("index")) or 0,
                    tc.get("id"),
                    fn.get("name"),
                    fn.get("arguments") or "",
                )
            ]
        elif kind == "message-end":
            delta = ev.get("delta") or {}
            reason = delta.get("finish_reason")
            self._reply.finish_reason = _finish(reason)
            _usage(self._reply, delta.get("usage"))
        elif kind == "error" or "error" in ev:
            raise body_error(self._target, ev)
        return []


class CohereAdapter:
    def build(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        stream: bool,
    ) -> HttpCall:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            **target.headers,
        }
        if target.secret is not None:
            headers["authorization"] = "Bearer " + target.key()
        body: dict[str, Any] = {
            "model": target.model,
            "messages": to_cohere(messages),
            "stream": stream,
        }
        for name, value in params.items():
            body[_PARAMS.get(name, name)] = (
                [value] if name == "stop" and isinstance(value, str) else value
            )
        if tools:
            body["tools"] = tools
        return HttpCall(f"{target.base_url}/chat", headers, body)

    def parse(self, target: Target, doc: Any) -> Reply:
        if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict):
            raise UpstreamError(
                f"{target.label} sent a reply without a message", fix="retry the request"
            )
        msg = doc["message"]
        reply = Reply(text=content_text(msg.get("content")))
        for i, tc in enumerate(msg.get("tool_calls") or ()):
            fn = tc.get("function") or {}
            args = fn.get("arguments")
            reply.tool_calls.append(
                ToolCall(
                    tc.get("id") or f"call_{i}",
                    fn.get("name", ""),
                    args if isinstance(args, str) else json.dumps(args),
                )
            )
        reply.finish_reason = _finish(doc.get("finish_reason"))
        _usage(reply, doc.get("usage"))
        return reply

    def stream_parser(self, target: Target) -> _Stream:
        return _Stream(target)
