"""LangChain's ChatOpenAI (invoke, stream, tools) against a gateway.

Assertions marked ``NEEDS h9`` depend on the relay changes of issue #11 done on branch wip/h9.
"""

from __future__ import annotations

import openai
import pytest
from _gwhelpers import Gateway
from _interop import BAD_KEY, MODEL, WORDS, charged_usd, no_hold_left
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


def chat(gw: Gateway, key: str | None = None, **kw: object) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=gw.v1,
        api_key=key or gw.key,  # type: ignore[arg-type]
        max_retries=0,
        **kw,  # type: ignore[arg-type]
    )


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_invoke_text_usage_cost(gw: Gateway) -> None:
    msg = chat(gw, include_response_headers=True).invoke("hello")
    assert isinstance(msg, AIMessage) and msg.content == WORDS
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] == 20
    headers = msg.response_metadata["headers"]
    cost = float(headers["x-dexto-cost"])
    assert cost == charged_usd(gw, headers["x-request-id"])
    assert msg.response_metadata["token_usage"]["cost"] == cost  # NEEDS h9: usage.cost rewrite


def test_stream_text_and_usage(gw: Gateway) -> None:
    chunks = list(chat(gw, stream_usage=True).stream("hello"))
    text = "".join(str(c.content) for c in chunks)
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert text == WORDS
    assert usage and usage[-1]["output_tokens"] == 20
    assert no_hold_left(gw)


def test_tool_loop_ends(gw: Gateway) -> None:
    model = chat(gw).bind_tools([get_weather])
    history: list[object] = [HumanMessage("weather in Paris?")]
    first = model.invoke(history)  # type: ignore[arg-type]
    assert isinstance(first, AIMessage) and first.tool_calls
    call = first.tool_calls[0]
    assert call["name"] == "get_weather" and call["args"] == {"city": "fake"}
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = model.invoke(history)  # type: ignore[arg-type]
    assert not final.tool_calls and final.content == WORDS


@pytest.mark.parametrize(
    ("which", "error", "status"),
    [
        ("bad_key", openai.AuthenticationError, 401),
        ("broke", openai.APIStatusError, 402),
        ("limited", openai.RateLimitError, 429),
    ],
)
def test_typed_errors(
    request: pytest.FixtureRequest, which: str, error: type[openai.APIStatusError], status: int
) -> None:
    gw: Gateway = request.getfixturevalue("gw" if which == "bad_key" else which)
    with pytest.raises(error) as info:
        chat(gw, BAD_KEY if which == "bad_key" else None).invoke("hello")
    assert info.value.status_code == status
