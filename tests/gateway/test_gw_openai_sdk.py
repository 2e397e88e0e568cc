"""The official openai SDK (sync, async, streaming) against a running gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from _gwhelpers import UPSTREAM_KEY, Gateway, chat_body, ledger_state, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream

MSG = [{"role": "user", "content": "hello"}]


def test_sync_answer_headers_and_charge(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o-mini",
            messages=MSG,  # type: ignore[arg-type]
            extra_headers={
                "X-Dexto-Session-ID": "sess-1",
                "X-Dexto-Source": "cli",
                "X-Dexto-Version": "0.1.0",
            },
        )
        completion = raw.parse()
    assert completion.model == "openai/gpt-4o-mini"
    assert completion.choices[0].message.content.startswith("w0 w1")
    assert completion.usage is not None and completion.usage.completion_tokens == 20
    cost = raw.headers["x-dexto-cost"]
    remaining = raw.headers["x-dexto-credits-remaining"]
    assert raw.headers["x-request-id"].startswith("req_")
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert state.holds == 0 and len(state.charges) == 1
    rid, amount, _, estimated = state.charges[0]
    assert rid == raw.headers["x-request-id"] and estimated == 0
    assert cost == f"0.{-amount:06d}" and remaining == f"0.{state.balance:06d}"
    extra = completion.usage.model_extra or {}
    assert extra["cost"] == float(cost)  # the body says what the ledger charged
    assert extra["dexto_upstream_cost"] > 0  # the upstream's own figure, kept aside
    with httpx.Client() as c:
        usage = c.get(gateway.url + "/me/usage", headers=gateway.auth()).json()
    assert usage["recent"][0]["sessionId"] == "sess-1" and usage["recent"][0]["source"] == "cli"


def test_upstream_sees_usage_request_and_upstream_key_not_client_key(
    gateway: Gateway,
) -> None:
    with httpx.Client() as c:
        r = c.post(gateway.v1 + "/chat/completions", json=chat_body(), headers=gateway.auth())
        s = c.post(
            gateway.v1 + "/chat/completions", json=chat_body(stream=True), headers=gateway.auth()
        )
    assert r.status_code == 200 and s.status_code == 200
    assert gateway.fake is not None
    seen = gateway.fake.stats.last_seen
    assert seen["x-fake-usage-requested"] == "include=true;stream_include_usage=true"
    assert seen["x-fake-model-seen"] == "openai/gpt-4o-mini"
    assert seen["x-fake-auth-seen"].endswith(";last4:" + UPSTREAM_KEY[-4:])
    assert "x-fake-auth-seen" not in r.headers  # upstream headers are not relayed
    assert UPSTREAM_KEY not in r.text + s.text


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_sync(gateway: Gateway, include_usage: bool) -> None:
    """The usage chunk (choices: []) reaches the client only when it asked for it, with the
    charged cost; without it every chunk has a choice (``chunk.choices[0]`` never raises)."""
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=MSG,
            stream=True,  # type: ignore[arg-type]
            **extra,
        )
        text = ""
        usage = None
        with stream:
            for chunk in stream:
                if not include_usage:
                    assert chunk.choices, chunk
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                if chunk.usage:
                    usage = chunk.usage
    assert text == "".join(f"w{i} " for i in range(20))
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert len(state.charges) == 1 and state.charges[0][3] == 0 and state.holds == 0
    if include_usage:
        assert usage is not None and usage.completion_tokens == 20
        cost = (usage.model_extra or {})["cost"]
        assert round(cost * 1_000_000) == -state.charges[0][1]
    else:
        assert usage is None


def test_async_and_async_streaming(gateway: Gateway) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.v1, api_key=gateway.key, max_retries=0
        ) as client:
            done = await client.chat.completions.create(
                model="anthropic/claude-sonnet-4.5",
                messages=MSG,  # type: ignore[arg-type]
            )
            stream = await client.chat.completions.create(
                model="anthropic/claude-sonnet-4.5",
                messages=MSG,  # type: ignore[arg-type]
                stream=True,
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return done.choices[0].message.content or "", "".join(parts)

    a, b = asyncio.run(run())
    assert a == b != ""
    assert len(ledger_state(gateway.db_url, gateway.account_id).charges) == 2


def test_tools_pass_through(gateway: Gateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"],
                },
            },
        }
    ]
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        done = client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=MSG,
            tools=tools,  # type: ignore[arg-type]
        )
        call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert call.function.arguments == '{"city":"fake","days":1}'  # type: ignore[union-attr]
        stream = client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=MSG,
            tools=tools,  # type: ignore[arg-type]
            stream=True,
        )
        args = ""
        finish = None
        with stream:
            for chunk in stream:
                for choice in chunk.choices:
                    for tc in choice.delta.tool_calls or []:
                        args += tc.function.arguments or "" if tc.function else ""
                    finish = choice.finish_reason or finish
    assert args == '{"city":"fake","days":1}' and finish == "tool_calls"


def test_402_surfaces_as_api_status_error(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> None:
    with start_gateway(sqlite_url, fake[1], credits_micros=0) as gw:
        with openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=MSG,  # type: ignore[arg-type]
                )
    err = info.value
    assert err.status_code == 402
    body = err.response.json()
    assert set(body["error"]) == {"code", "message", "type"}
    assert body["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert body["error"]["type"] == "insufficient_credits"
    assert body["error"]["message"].startswith("Insufficient Dexto credits. Balance: $0.00. ")
    assert err.response.headers["x-dexto-credits-remaining"] == "0.000000"
    assert ledger_state(gw.db_url, gw.account_id).holds == 0


def test_401_bad_and_revoked_keys(gateway: Gateway) -> None:
    for key in ("dxk_" + "x" * 40, "not-a-dexto-key"):
        with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as info:
                client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=MSG,  # type: ignore[arg-type]
                )
        assert info.value.response.json()["error"]["code"] == "INVALID_API_KEY"


def test_429_with_retry_after(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> None:
    with start_gateway(sqlite_url, fake[1], rate_limit_rps=0.001, rate_limit_burst=2) as gw:
        with openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0) as client:
            for _ in range(2):
                client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=MSG,  # type: ignore[arg-type]
                )
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=MSG,  # type: ignore[arg-type]
                )
    assert info.value.response.json()["error"]["code"] == "RATE_LIMITED"
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert len(ledger_state(gw.db_url, gw.account_id).charges) == 2


def test_models_list(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o-mini" in ids and "anthropic/claude-sonnet-4.5" in ids
