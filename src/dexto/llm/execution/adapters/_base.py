"""The shape every HTTP wire adapter has: build a request, parse a reply, parse a stream."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCallDelta
from dexto.llm.execution.adapters._tools import ToolAccumulator

__all__ = ["Adapter", "Delta", "StreamParser", "StreamState", "as_int", "dropped_warning"]

Delta = TextDelta | ToolCallDelta


class StreamParser(Protocol):
    def feed(self, event: str, data: str) -> list[Delta]:
        """One SSE event in; the deltas it carries out (raises the translated error events)."""

    def reply(self) -> Reply:
        """Everything seen so far, assembled."""


class StreamState:
    """What every stream parser accumulates: text pieces, tool-call fragments, the reply."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._reply = Reply()
        self._text: list[str] = []
        self._tools = ToolAccumulator()

    def reply(self) -> Reply:
        self._reply.text = "".join(self._text)
        self._reply.tool_calls = self._tools.calls()
        return self._reply


class Adapter(Protocol):
    def build(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        stream: bool,
    ) -> HttpCall: ...

    def parse(self, target: Target, doc: Any) -> Reply: ...

    def stream_parser(self, target: Target) -> StreamParser: ...


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dropped_warning(target: Target, names: Iterable[str]) -> tuple[str, ...]:
    """One warning naming the parameters ``target``'s API has no field for (none if empty)."""
    dropped = sorted(set(names))
    if not dropped:
        return ()
    return (
        f"{target.label} has no equivalent for {', '.join(dropped)}; "
        f"{'it was' if len(dropped) == 1 else 'they were'} left out of the request",
    )
