"""Anthropic Messages API (``POST {base}/messages``, ``anthropic-version: 2023-06-01``).

OpenAI-shaped input is converted: system messages → ``system``; assistant ``tool_calls`` →
``tool_use`` blocks; ``tool`` messages → ``tool_result`` blocks in a user turn; consecutive turns
of one role are merged (the API requires alternation).
"""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import body_error
from dexto.llm.execution._messages import content_text, parse_arguments
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int, dropped_warning

__all__ = ["AnthropicAdapter", "DEFAULT_MAX_TOKENS", "to_anthropic"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def _finish(reason: Any) -> str | None:
    return _STOP.get(reason, reason.lower()) if isinstance(reason, str) else None


def _blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    role = m["role"]
    if role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": content_text(m.get("content")),
            }
        ]
    out: list[dict[str, Any]] = []
    text = content_text(m.get("content"))
    if text:
        out.append({"type": "text", "text": text})
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        out.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "input": parse_arguments(fn.get("arguments")),
            }
        )
    return out


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, Anthropic messages)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] in ("system", "developer"):
            system.append(content_text(m.get("content")))
            continue
        role = "assistant" if m["role"] == "assistant" else "user"
        blocks = _blocks(m)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def _tool_choice(choice: Any) -> Any:
    if choice == "required":
        return {"type": "any"}
    if choice in ("auto", "none"):
        return {"type": choice}
    if isinstance(choice, dict) and "function" in choice:
        return {"type": "tool", "name": choice["function"].get("name", "")}
    return choice


# OpenAI parameters the Messages API has a field for; the rest are dropped with a warning
_SAME = ("temperature", "top_p", "top_k", "thinking")  # sent under the same name
_MAPPED = {
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "metadata",
    "n",
}


def _params(
    params: dict[str, Any], tools: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], list[str]]:
    """OpenAI chat parameters → Messages API fields, and the names that have no field."""
    given = {k: v for k, v in params.items() if v is not None}
    out: dict[str, Any] = {k: given[k] for k in _SAME if k in given}
    dropped = [k for k in given if k not in _SAME and k not in _MAPPED]
    out["max_tokens"] = (
        given.get("max_completion_tokens") or given.get("max_tokens") or DEFAULT_MAX_TOKENS
    )
    if "stop" in given:
        stop = given["stop"]
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if "tool_choice" in given:
        out["tool_choice"] = _tool_choice(given["tool_choice"])
    if given.get("parallel_tool_calls") is False and tools:
        choice = out.get("tool_choice") or {"type": "auto"}
        if isinstance(choice, dict) and choice.get("type") != "none":
            out["tool_choice"] = {**choice, "disable_parallel_tool_use": True}
    metadata = given.get("metadata")
    if isinstance(metadata, dict) and set(metadata) <= {"user_id"}:
        out["metadata"] = dict(metadata)
    elif metadata is not None:
        dropped.append("metadata")
    if isinstance(given.get("user"), str):
        out["metadata"] = {**out.get("metadata", {}), "user_id": given["user"]}
    elif "user" in given:
        dropped.append("user")
    if given.get("n", 1) != 1:
        dropped.append("n")
    return out, dropped


def _body(
    target: Target,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """(Messages API body, names of the parameters left out)."""
    system, turns = to_anthropic(messages)
    fields, dropped = _params(params, tools)
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": fields.pop("max_tokens"),
        "messages": turns,
    }
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in tools
        ]
    body.update(fields)
    return body, dropped


class _Stream(StreamState):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._tool_index: dict[int, int] = {}  # content block index → tool-call index

    def feed(self, event: str, data: str) -> list[Delta]:
        try:
            ev = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{self._target.label} sent a stream event that is not JSON",
                fix="retry the request",
            ) from None
        kind = ev.get("type") if isinstance(ev, dict) else None
        if kind == "error":
            raise body_error(self._target, ev)
        if kind == "message_start":
            usage = (ev.get("message") or {}).get("usage") or {}
            self._reply.prompt_tokens = as_int(usage.get("input_tokens"))
        elif kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                idx = self._tool_index.setdefault(ev.get("index", 0), len(self._tool_index))
                return [self._tools.add(idx, block.get("id"), block.get("name"), "")]
        elif kind == "content_block_delta":
            return self._delta(ev)
        elif kind == "message_delta":
            stop = (ev.get("delta") or {}).get("stop_reason")
            self._reply.finish_reason = _finish(stop)
            out = as_int((ev.get("usage") or {}).get("output_tokens"))
            self._reply.completion_tokens = (
                out if out is not None else (self._reply.completion_tokens)
            )
        return []

    def _delta(self, ev: dict[str, Any]) -> list[Delta]:
        delta = ev.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            self._text.append(delta["text"])
            return [TextDelta(delta["text"])]
        if delta.get("type") == "input_json_delta":
            idx = self._tool_index.get(ev.get("index", 0))
            if idx is not None and delta.get("partial_json"):
                return [self._tools.add(idx, None, None, delta["partial_json"])]
        return []


class AnthropicAdapter:
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
            "anthropic-version": API_VERSION,
            **target.headers,
        }
        if target.secret is not None:
            headers["x-api-key"] = target.key()
        body, dropped = _body(target, messages, tools, params)
        if stream:
            body["stream"] = True
        return HttpCall(
            f"{target.base_url}/messages", headers, body, dropped_warning(target, dropped)
        )

    def parse(self, target: Target, doc: Any) -> Reply:
        if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
            raise UpstreamError(
                f"{target.label} sent a reply without content", fix="retry the request"
            )
        reply = Reply()
        texts = []
        for block in doc["content"]:
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                reply.tool_calls.append(
                    ToolCall(
                        block.get("id", ""),
                        block.get("name", ""),
                        json.dumps(block.get("input") or {}),
                    )
                )
        reply.text = "".join(texts)
        reply.finish_reason = _finish(doc.get("stop_reason"))
        usage = doc.get("usage") or {}
        reply.prompt_tokens = as_int(usage.get("input_tokens"))
        reply.completion_tokens = as_int(usage.get("output_tokens"))
        return reply

    def stream_parser(self, target: Target) -> _Stream:
        return _Stream(target)
