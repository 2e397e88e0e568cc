"""Accumulates streamed tool-call fragments into whole calls."""

from __future__ import annotations

from dexto.llm.execution._types import ToolCall, ToolCallDelta

__all__ = ["ToolAccumulator"]


class ToolAccumulator:
    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index → [id, name, args...]

    def add(self, index: int, id: str | None, name: str | None, args: str) -> ToolCallDelta:
        slot = self._calls.setdefault(index, [f"call_{index}", ""])
        if id:
            slot[0] = id
        if name:
            slot[1] = name
        if args:
            slot.append(args)
        return ToolCallDelta(index, id, name, args)

    def calls(self) -> list[ToolCall]:
        return [ToolCall(s[0], s[1], "".join(s[2:])) for _, s in sorted(self._calls.items())]
