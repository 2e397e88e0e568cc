"""Value types of the execution API: results, route taken, usage, tool calls, stream events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatResult",
    "Done",
    "RouteTaken",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call requested by the model; ``arguments`` is the JSON text as sent."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        """``arguments`` decoded from JSON (``{}`` when empty)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    def to_message(self) -> dict[str, Any]:
        """The OpenAI-style ``tool_calls`` item to put back into an assistant message."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: str | None = None  # what the Dexto gateway charged (USD decimal string), if known

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "totalTokens": self.total_tokens,
            "costUsd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class RouteTaken:
    """How a request was actually executed (after any fallback)."""

    route: Literal["dexto", "direct"]
    effective_provider: str
    effective_model: str
    fell_back: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "effectiveProvider": self.effective_provider,
            "effectiveModel": self.effective_model,
            "fellBack": self.fell_back,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    route: RouteTaken
    credits_remaining: str | None = None  # USD decimal string from X-Dexto-Credits-Remaining
    warnings: tuple[str, ...] = ()
    finish_reason: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation (tool calls included)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_message() for c in self.tool_calls]
        return msg

    def to_json(self) -> dict[str, Any]:
        """The ``dexto chat --json`` shape."""
        return {
            "text": self.text,
            "route": self.route.to_json(),
            "usage": self.usage.to_json(),
            "creditsRemaining": self.credits_remaining,
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: ``id``/``name`` arrive first, ``arguments`` in fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Done:
    result: ChatResult


StreamEvent = TextDelta | ToolCallDelta | Done


@dataclass(slots=True)
class Reply:
    """What an adapter parsed from one response (internal; the Model adds route and credits)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: str | None = None
    finish_reason: str | None = None
