"""Amazon Bedrock Converse API (``converse`` / ``converse_stream`` through boto3, an optional
extra). The "call" built here is the keyword arguments of the boto3 method; the transport lives in
``dexto.llm.execution._cloud``.

OpenAI chat parameters are sent as the Converse fields that mean the same (``inferenceConfig``,
``toolConfig.toolChoice``, ``outputConfig``, ``requestMetadata``, ``serviceTier``); the ones
without such a field are left out with one warning naming them.
"""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._messages import content_text, parse_arguments
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int, dropped_warning

__all__ = ["BedrockAdapter", "to_converse"]

_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}
_CONFIG = {  # OpenAI parameter → inferenceConfig field
    "max_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop": "stopSequences",
}
_TIERS = ("default", "flex", "priority")  # OpenAI service_tier values serviceTier.type also has


def _finish(reason: Any) -> str | None:
    return _STOP.get(reason, reason.lower()) if isinstance(reason, str) else None


def _blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    if m["role"] == "tool":
        return [
            {
                "toolResult": {
                    "toolUseId": m.get("tool_call_id", ""),
                    "content": [{"text": content_text(m.get("content"))}],
                }
            }
        ]
    out: list[dict[str, Any]] = []
    text = content_text(m.get("content"))
    if text:
        out.append({"text": text})
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        out.append(
            {
                "toolUse": {
                    "toolUseId": call.get("id", ""),
                    "name": fn.get("name", ""),
                    "input": parse_arguments(fn.get("arguments")),
                }
            }
        )
    return out


def to_converse(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, Converse messages)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] in ("system", "developer"):
            system.append({"text": content_text(m.get("content"))})
            continue
        role = "assistant" if m["role"] == "assistant" else "user"
        blocks = _blocks(m)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` → ``toolChoice`` ({} when nothing is sent, None if unknown)."""
    if choice == "auto" or (not tools and choice == "none"):
        return {}
    if not tools:
        return None
    if choice == "required":
        return {"any": {}}
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
        return {"tool": {"name": fn["name"]}}
    return None


def _output_config(value: Any) -> dict[str, Any] | None:
    """OpenAI ``response_format`` → Converse ``outputConfig`` ({} for text, None if unknown)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {}
    spec = value.get("json_schema") if kind == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        return None
    schema: dict[str, Any] = {"schema": json.dumps(spec["schema"])}
    schema.update({k: spec[k] for k in ("name", "description") if isinstance(spec.get(k), str)})
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}


def _request_metadata(value: Any) -> bool:
    """Whether ``value`` fits ``requestMetadata``: 1 to 16 string keys with string values."""
    return (
        isinstance(value, dict)
        and 0 < len(value) <= 16
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _params(
    params: dict[str, Any], tools: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """OpenAI chat parameters → (Converse fields, ``toolChoice``, names that have no field)."""
    given = {k: v for k, v in params.items() if v is not None}
    if "max_completion_tokens" in given:  # one maxTokens: the newer OpenAI name wins
        given["max_tokens"] = given.pop("max_completion_tokens")
    config: dict[str, Any] = {}
    out: dict[str, Any] = {}
    choice: dict[str, Any] | None = {}
    dropped: list[str] = []
    for name, value in given.items():
        if name in _CONFIG:
            config[_CONFIG[name]] = [value] if name == "stop" and isinstance(value, str) else value
        elif name == "tool_choice" and (choice := _tool_choice(value, tools)) is not None:
            continue
        elif name == "response_format" and (fmt := _output_config(value)) is not None:
            if fmt:
                out["outputConfig"] = fmt
        elif name == "metadata" and _request_metadata(value):
            out["requestMetadata"] = dict(value)
        elif name == "service_tier" and value in _TIERS:
            out["serviceTier"] = {"type": value}
        elif not (name == "n" and value == 1) and not (
            name == "parallel_tool_calls" and (value is True or not tools)
        ):
            dropped.append(name)
    if config:
        out["inferenceConfig"] = config
    return out, choice or {}, dropped


class _Stream(StreamState):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._tool_index: dict[int, int] = {}

    def feed(self, event: str, data: str) -> list[Delta]:
        ev = json.loads(data)
        if "contentBlockStart" in ev:
            start = ev["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if use:
                idx = self._tool_index.setdefault(
                    start.get("contentBlockIndex", 0), len(self._tool_index)
                )
                return [self._tools.add(idx, use.get("toolUseId"), use.get("name"), "")]
        elif "contentBlockDelta" in ev:
            body = ev["contentBlockDelta"]
            delta = body.get("delta") or {}
            if delta.get("text"):
                self._text.append(delta["text"])
                return [TextDelta(delta["text"])]
            at = self._tool_index.get(body.get("contentBlockIndex", 0))
            piece = (delta.get("toolUse") or {}).get("input")
            if at is not None and piece:
                return [self._tools.add(at, None, None, piece)]
        elif "messageStop" in ev:
            stop = ev["messageStop"].get("stopReason")
            self._reply.finish_reason = _finish(stop)
        elif "metadata" in ev:
            usage = ev["metadata"].get("usage") or {}
            self._reply.prompt_tokens = as_int(usage.get("inputTokens"))
            self._reply.completion_tokens = as_int(usage.get("outputTokens"))
        elif ev and next(iter(ev)).endswith("Exception"):  # e.g. throttlingException
            raise UpstreamError(
                f"{self._target.label} reported {next(iter(ev))} mid-stream",
                fix="retry the request",
            )
        return []  # messageStart, contentBlockStop and other events carry nothing used here


class BedrockAdapter:
    def build(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        stream: bool,
    ) -> HttpCall:
        system, turns = to_converse(messages)
        kwargs: dict[str, Any] = {"modelId": target.model, "messages": turns}
        if system:
            kwargs["system"] = system
        fields, choice, dropped = _params(params, tools)
        kwargs.update(fields)
        if tools:
            kwargs["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t["function"]["name"],
                            "description": t["function"].get("description")
                            or t["function"]["name"],
                            "inputSchema": {
                                "json": t["function"].get("parameters")
                                or {"type": "object", "properties": {}}
                            },
                        }
                    }
                    for t in tools
                ],
                **({"toolChoice": choice} if choice else {}),
            }
        return HttpCall(
            "bedrock:" + ("converse_stream" if stream else "converse"),
            {},
            kwargs,
            dropped_warning(target, dropped),
        )

    def parse(self, target: Target, doc: Any) -> Reply:
        msg = ((doc.get("output") or {}).get("message") or {}) if isinstance(doc, dict) else {}
        reply = Reply()
        texts = []
        for block in msg.get("content") or ():
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                reply.tool_calls.append(
                    ToolCall(
                        use.get("toolUseId", ""),
                        use.get("name", ""),
                        json.dumps(use.get("input") or {}),
                    )
                )
        reply.text = "".join(texts)
        reply.finish_reason = _finish(doc.get("stopReason"))
        usage = doc.get("usage") or {}
        reply.prompt_tokens = as_int(usage.get("inputTokens"))
        reply.completion_tokens = as_int(usage.get("outputTokens"))
        return reply

    def stream_parser(self, target: Target) -> _Stream:
        return _Stream(target)
