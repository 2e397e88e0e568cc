"""OpenAI tool definitions → Cohere v2 tools: the function keeps only ``name``, ``description``
and ``parameters`` (Cohere answers 400 to other fields — OpenAI's per-tool ``strict`` among
them); ``strict: true`` on every tool becomes ``strict_tools``, on only some it is left out with
the one warning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dexto._secret import Secret
from dexto.llm.execution import Done, Model
from dexto.llm.execution._target import Target
from dexto.llm.execution.adapters import adapter_for

from .conftest import Fake, direct_env


def _tool(name: str, strict: bool | None) -> dict[str, Any]:
    fn: dict[str, Any] = {
        "name": name,
        "description": "d",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    if strict is not None:
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def _sent(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {k: v for k, v in _tool(name, None)["function"].items()},
    }


@pytest.mark.parametrize(
    ("stricts", "params", "strict_tools", "warned"),
    [
        ([None, None], {}, None, False),
        ([True, True], {}, True, False),
        ([False, False], {}, None, False),
        ([True, None], {}, None, True),
        ([True, False], {}, None, True),
        ([True, True], {"strict_tools": False}, False, False),  # the caller's own field wins
    ],
)
def test_cohere_tools(
    stricts: list[bool | None], params: dict[str, Any], strict_tools: bool | None, warned: bool
) -> None:
    target = Target("cohere", "cohere", "m", "http://p.test/v2", Secret("k"), "env:K", "Cohere")
    tools = [_tool(f"t{i}", s) for i, s in enumerate(stricts)]
    call = adapter_for("cohere").build(target, [{"role": "user", "content": "hi"}], tools,
                                       dict(params), False)  # fmt: skip
    assert call.body["tools"] == [_sent(f"t{i}") for i in range(len(stricts))]
    assert call.body.get("strict_tools") == strict_tools
    assert any("tools[].function.strict" in w for w in call.warnings) is warned


def test_strict_openai_tools_reach_the_fake_cohere_server(
    fakes: dict[str, Fake], opened: Callable[..., Model]
) -> None:
    """The fake answers 400 to a field a Cohere tool function does not document (before, the
    per-tool ``strict`` was sent as it was)."""
    model = opened("cohere/command-a-03-2025", env=direct_env(fakes, "cohere"))
    tools = [_tool("lookup", True)]
    result = model.complete("hello", tools=tools)
    assert [c.name for c in result.tool_calls] == ["lookup"]
    events = list(model.stream("hello", tools=[_tool("lookup", True), _tool("other", None)]))
    assert isinstance(events[-1], Done)
    assert any("tools[].function.strict" in w for w in events[-1].result.warnings)
