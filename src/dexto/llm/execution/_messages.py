"""Input normalisation: messages and tools are accepted in the OpenAI chat shape everywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dexto.errors import ConfigError

__all__ = ["Messages", "content_text", "normalize_messages", "normalize_tools", "tool_names"]

Messages = str | Sequence[Mapping[str, Any]]
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_FIX = (
    'pass a string or a list of {"role": "user"|"assistant"|"system"|"tool", '
    '"content": ...} messages'
)


def normalize_messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in _ROLES:
            raise ConfigError(f"message {i} has no valid role", field=f"messages[{i}]", fix=_FIX)
        out.append(dict(m))
    if not out:
        raise ConfigError("no messages to send", field="messages", fix=_FIX)
    return out


def normalize_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI ``{"type": "function", "function": {...}}`` items (a bare function is wrapped)."""
    if not tools:
        return None
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function", t) if isinstance(t, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ConfigError(
                f"tool {i} has no function name",
                field=f"tools[{i}]",
                fix='pass {"type": "function", "function": {"name": ..., "parameters": {...}}}',
            )
        out.append({"type": "function", "function": dict(fn)})
    return out


def content_text(content: Any) -> str:
    """Text of an OpenAI message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, Mapping) and isinstance(p.get("text", ""), str)
        )
    return json.dumps(content)


def tool_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """tool_call_id → function name, from the assistant messages (for wires that need names)."""
    names: dict[str, str] = {}
    for m in messages:
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            if call.get("id") and fn.get("name"):
                names[call["id"]] = fn["name"]
    return names


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as an object (JSON text is decoded; bad JSON is kept as a string)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return {"_raw": arguments}
    return arguments if arguments is not None else {}
