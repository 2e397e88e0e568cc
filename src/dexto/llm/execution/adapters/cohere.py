"""Cohere v2 chat (``POST {base}/chat``; OpenAI-like messages and tools, its own reply and
stream event shapes: ``content-delta``, ``tool-call-start|delta``, ``message-end``).

OpenAI chat parameters are sent as the v2 chat fields that mean the same; the ones without such a
field are left out with one warning naming them.
"""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import body_error
from dexto.llm.execution._messages import content_text
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int, dropped_warning

__all__ = ["CohereAdapter", "to_cohere"]

_STOP = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "TOOL_CALL": "tool_calls",
    "MAX_TOKENS": "length",
}
# OpenAI parameters sent under the same name, and those renamed
_SAME = ("temperature", "seed", "frequency_penalty", "presence_penalty", "logprobs")
_RENAMED = {"top_p": "p", "top_k": "k"}
# v2 chat fields with no OpenAI counterpart, sent as they are
_NATIVE = (
    "p",
    "k",
    "stop_sequences",
    "strict_tools",
    "documents",
    "citation_options",
    "safety_mode",
    "thinking",
)
_CHOICES = {"required": "REQUIRED", "REQUIRED": "REQUIRED", "none": "NONE", "NONE": "NONE"}


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


def _response_format(value: Any) -> dict[str, Any] | None:
    """OpenAI ``response_format`` → the v2 ``response_format`` ({} for text, None if unknown)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":  # a v2 ``json_schema`` given with it is kept
        schema = value.get("json_schema")
        return {
            "type": "json_object",
            **({"json_schema": schema} if isinstance(schema, dict) else {}),
        }
    spec = value.get("json_schema") if kind == "json_schema" else None
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return {"type": "json_object", "json_schema": spec["schema"]}
    return None


def _tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> str | None:
    """OpenAI ``tool_choice`` → ``REQUIRED``/``NONE``; "" when nothing is sent; None if unknown."""
    if choice == "auto" or (not tools and choice in ("none", "NONE")):
        return ""
    return _CHOICES.get(choice) if tools and isinstance(choice, str) else None


def _params(
    params: dict[str, Any], tools: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], list[str]]:
    """OpenAI chat parameters → v2 chat fields, and the names that have no field."""
    given = {k: v for k, v in params.items() if v is not None}
    if "max_completion_tokens" in given:  # one max_tokens: the newer OpenAI name wins
        given["max_tokens"] = given.pop("max_completion_tokens")
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in given.items():
        if name in _SAME or name in _NATIVE or name == "max_tokens":
            out[name] = value
        elif name in _RENAMED:
            out[_RENAMED[name]] = value
        elif name == "stop":
            out["stop_sequences"] = [value] if isinstance(value, str) else value
        elif name == "response_format" and (fmt := _response_format(value)) is not None:
            if fmt:
                out[name] = fmt
        elif name == "tool_choice" and (choice := _tool_choice(value, tools)) is not None:
            if choice:
                out[name] = choice
        elif not (name == "n" and value == 1) and not (
            name == "parallel_tool_calls" and (value is True or not tools)
        ):
            dropped.append(name)
    return out, dropped


_TOOL_FIELDS = ("name", "description", "parameters")


def _tools(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[bool]]:
    """OpenAI tools → v2 tools, whose function has only ``name``, ``description`` and
    ``parameters`` (Cohere refuses other fields, e.g. OpenAI's per-tool ``strict``), and, per
    tool, whether it asked for ``strict: true`` (v2's ``strict_tools`` covers all tools)."""
    out: list[dict[str, Any]] = []
    strict: list[bool] = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        strict.append(fn.get("strict") is True)
        out.append({"type": "function", "function": {k: fn[k] for k in _TOOL_FIELDS if k in fn}})
    return out, strict


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
        fields, dropped = _params(params, tools)
        body.update(fields)
        if tools:
            body["tools"], strict = _tools(tools)
            if all(strict):
                body.setdefault("strict_tools", True)
            elif any(strict):
                dropped.append("tools[].function.strict")
        return HttpCall(f"{target.base_url}/chat", headers, body, dropped_warning(target, dropped))

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
