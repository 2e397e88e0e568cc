"""The official openai Python SDK (sync, async, streaming, Responses, models) against a gateway.

Assertions marked ``NEEDS h9`` depend on the relay changes of issue #11 done on branch wip/h9
(strict ``include_usage`` relay; ``usage.cost`` rewritten to the charged amount).
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from _gwhelpers import Gateway
from _interop import BAD_KEY, MODEL, WORDS, charged_usd, no_hold_left

MSG = [{"role": "user", "content": "hello"}]


def client(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key or gw.key, max_retries=0)


def test_chat_sync_text_usage_cost(gw: Gateway) -> None:
    with client(gw) as c:
        raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=MSG)  # type: ignore[arg-type]
    done = raw.parse()
    assert done.choices[0].message.content == WORDS
    assert done.usage is not None and done.usage.completion_tokens == 20
    cost = float(raw.headers["x-dexto-cost"])
    assert cost == charged_usd(gw, raw.headers["x-request-id"])
    assert (done.usage.model_extra or {})["cost"] == cost  # NEEDS h9: usage.cost rewrite


def test_async_stream_without_include_usage_naive_loop(gw: Gateway) -> None:
    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0) as c:
            stream = await c.chat.completions.create(model=MODEL, messages=MSG, stream=True)  # type: ignore[arg-type]
            text = ""
            async for chunk in stream:
                # The most common loop: IndexError on a `choices: []` chunk.
                text += chunk.choices[0].delta.content or ""  # NEEDS h9: strict include_usage
            return text

    assert asyncio.run(run()) == WORDS
    assert no_hold_left(gw)


def test_stream_with_include_usage_cost_is_the_charge(gw: Gateway) -> None:
    with client(gw) as c:
        raw = c.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MSG,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = None
        text = ""
        for chunk in raw.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage
    assert text == WORDS and usage is not None and usage.completion_tokens == 20
    charged = charged_usd(gw, raw.headers["x-request-id"])
    assert (usage.model_extra or {})["cost"] == charged  # NEEDS h9: usage.cost rewrite


def test_responses_sync_and_stream(gw: Gateway) -> None:
    with client(gw) as c:
        raw = c.responses.with_raw_response.create(model=MODEL, input="hello")
        resp = raw.parse()
        with c.responses.stream(model=MODEL, input="hello") as stream:
            deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            final = stream.get_final_response()
    assert resp.output_text == WORDS and resp.usage is not None
    assert resp.usage.output_tokens == 20
    cost = float(raw.headers["x-dexto-cost"])
    assert cost == charged_usd(gw, raw.headers["x-request-id"])
    assert (resp.usage.model_extra or {})["cost"] == cost
    assert deltas == WORDS == final.output_text
    assert final.usage is not None and final.usage.output_tokens == 20


def test_models_list_and_retrieve(gw: Gateway) -> None:
    with client(gw) as c:
        ids = {m.id for m in c.models.list()}
        model = c.models.retrieve(MODEL)
        with pytest.raises(openai.NotFoundError):
            c.models.retrieve("nobody/nothing")
    assert MODEL in ids and model.id == MODEL


def test_typed_errors_401_402_429(gw: Gateway, broke: Gateway, limited: Gateway) -> None:
    cases: list[tuple[Gateway, str | None, type[openai.APIStatusError], int]] = [
        (gw, BAD_KEY, openai.AuthenticationError, 401),
        (broke, None, openai.APIStatusError, 402),
        (limited, None, openai.RateLimitError, 429),
    ]
    for target, key, error, status in cases:
        with client(target, key) as c:
            for call in (
                lambda: c.chat.completions.create(model=MODEL, messages=MSG),  # type: ignore[arg-type]
                lambda: c.responses.create(model=MODEL, input="hello"),
            ):
                with pytest.raises(error) as info:
                    call()
                assert info.value.status_code == status
                body = info.value.body
                assert isinstance(body, dict) and body.get("code")
