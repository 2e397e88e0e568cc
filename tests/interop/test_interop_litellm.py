"""LiteLLM as a client (``litellm.completion`` with an ``openai/`` model) against a gateway.

Assertions marked ``NEEDS h9`` depend on the relay changes of issue #11 done on branch wip/h9.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import warnings
from collections.abc import Iterator

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch at import

import litellm  # noqa: E402
import pytest  # noqa: E402
from _gwhelpers import Gateway  # noqa: E402
from _interop import BAD_KEY, MODEL, WORDS, charged_usd, no_hold_left  # noqa: E402

MSG = [{"role": "user", "content": "hello"}]
# LiteLLM's own code trips pydantic warnings at call time (its code, not ours).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


@pytest.fixture(autouse=True, scope="module")
def _close_litellm_clients() -> Iterator[None]:
    """LiteLLM caches one ``openai.OpenAI`` client per key and base URL for the process's life;
    close the sync ones this module made (their sockets to the test gateways), then forget all,
    and close the event loop LiteLLM set on this thread."""
    yield
    cache = litellm.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.flush_cache()
    # LiteLLM's success hook calls asyncio.get_event_loop() on this thread, which makes and sets
    # a loop that nothing closes; close it and leave the thread without one, as before.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # none set on this thread (an earlier test set None)
            return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


def complete(gw: Gateway, key: str | None = None, **kw: object) -> object:
    return litellm.completion(
        model="openai/" + MODEL, api_base=gw.v1, api_key=key or gw.key, messages=MSG, **kw
    )


def test_completion_text_usage_cost(gw: Gateway) -> None:
    r = complete(gw)
    assert r.choices[0].message.content == WORDS  # type: ignore[attr-defined]
    assert r.usage.completion_tokens == 20  # type: ignore[attr-defined]
    headers = r._hidden_params["additional_headers"]  # type: ignore[attr-defined]
    cost = float(headers["llm_provider-x-dexto-cost"])
    assert cost == charged_usd(gw, headers["llm_provider-x-request-id"])
    assert r._hidden_params["response_cost"] == cost  # type: ignore[attr-defined]  # NEEDS h9


def test_streaming_text_and_usage(gw: Gateway) -> None:
    text, usage = "", None
    for chunk in complete(gw, stream=True, stream_options={"include_usage": True}):  # type: ignore[attr-defined]
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = getattr(chunk, "usage", None) or usage
    assert text == WORDS and usage is not None and usage.completion_tokens == 20
    assert no_hold_left(gw)


@pytest.mark.parametrize(
    ("which", "error", "status"),
    [
        ("bad_key", litellm.AuthenticationError, 401),
        ("broke", litellm.APIError, 402),
        ("limited", litellm.RateLimitError, 429),
    ],
)
def test_typed_errors(
    request: pytest.FixtureRequest, which: str, error: type[Exception], status: int
) -> None:
    gw: Gateway = request.getfixturevalue("gw" if which == "bad_key" else which)
    with pytest.raises(error) as info:
        complete(gw, BAD_KEY if which == "bad_key" else None)
    assert getattr(info.value, "status_code", None) == status
