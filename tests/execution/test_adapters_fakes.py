"""Each wire adapter against its fake provider: text, streaming, tool calls, usage, errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from dexto.errors import AuthFailedError, UpstreamError
from dexto.llm.execution import Done, Model, TextDelta, ToolCallDelta

from .conftest import KEYS, Fake, direct_env

Open = Callable[..., Model]

SELECTIONS = {
    "anthropic": "anthropic/claude-sonnet-4-5-20250929",
    "openai": "openai/gpt-4o-mini",
    "google": "google/gemini-2.0-flash",
    "cohere": "cohere/command-a-03-2025",
}
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
KINDS = list(SELECTIONS)


@pytest.mark.parametrize("kind", KINDS)
def test_complete_answers_with_native_model_and_users_key(
    kind: str, fakes: dict[str, Fake], opened: Open
) -> None:
    model = opened(SELECTIONS[kind], env=direct_env(fakes, kind))
    result = model.complete(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    )
    native = SELECTIONS[kind].split("/", 1)[1]
    assert f"model={native}" in result.text
    assert f"key=…{KEYS[kind][-4:]}" in result.text
    assert "you said 'hello'" in result.text
    assert result.route.route == "direct" and not result.route.fell_back
    assert result.usage.prompt_tokens and result.usage.completion_tokens
    assert result.credits_remaining is None
    assert fakes[kind].requests[-1]["model"] == native


@pytest.mark.parametrize("kind", KINDS)
def test_stream_yields_deltas_then_done(kind: str, fakes: dict[str, Fake], opened: Open) -> None:
    model = opened(SELECTIONS[kind], env=direct_env(fakes, kind))
    events = list(model.stream("hello"))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert isinstance(events[-1], Done)
    result = events[-1].result
    assert result.text == "".join(deltas)
    assert "you said 'hello'" in result.text
    assert result.usage.completion_tokens
    assert fakes[kind].requests[-1]["stream"] is True


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(
    kind: str, stream: bool, fakes: dict[str, Fake], opened: Open
) -> None:
    model = opened(SELECTIONS[kind], env=direct_env(fakes, kind))
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    if stream:
        events = list(model.stream(messages, tools=WEATHER))
        assert any(isinstance(e, ToolCallDelta) for e in events)
        last = events[-1]
        assert isinstance(last, Done)
        result = last.result
    else:
        result = model.complete(messages, tools=WEATHER)
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name == "get_weather"
    assert call.parsed_arguments() == {"city": "fake"}
    assert result.finish_reason == "tool_calls"
    messages += [
        result.to_message(),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"t": 21})},
    ]
    follow = model.complete(messages, tools=WEATHER)
    assert not follow.tool_calls
    assert "tool result" in follow.text and "21" in follow.text


@pytest.mark.parametrize("kind", KINDS)
def test_refused_key_is_auth_failed_without_the_key(
    kind: str, fakes: dict[str, Fake], opened: Open
) -> None:
    env = direct_env(fakes, kind)
    bad = "bad-key-very-secret-9999"
    env[f"{kind.upper()}_API_KEY"] = bad
    with pytest.raises(AuthFailedError) as info:
        opened(SELECTIONS[kind], env=env).complete("hi")
    text = json.dumps(info.value.to_dict()) + str(info.value)
    assert bad not in text
    assert f"env:{kind.upper()}_API_KEY" in text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [429, 500, 404])
def test_http_failures_become_upstream_errors(
    kind: str, status: int, fakes: dict[str, Fake], opened: Open
) -> None:
    model = opened(SELECTIONS[kind], env=direct_env(fakes, kind))
    model._primary.headers["x-fake-status"] = str(status)  # type: ignore[index]
    with pytest.raises(UpstreamError) as info:
        model.complete("hi")
    assert info.value.status == status
    assert info.value.to_dict()["error"]["code"] == "UPSTREAM_ERROR"


def test_unreachable_provider_is_upstream_error(fakes: dict[str, Fake], opened: Open) -> None:
    env = direct_env(fakes, "anthropic")
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9/v1"
    with pytest.raises(UpstreamError, match="could not reach Anthropic"):
        opened(SELECTIONS["anthropic"], env=env).complete("hi")
