"""End-to-end on loopback: the real gateway (subprocess, SQLite), the fake OpenRouter upstream
and the fake direct providers. Covers SPEC §7: via Dexto, 402 → own-key fallback, exhausted with
no key, streaming, direct-only and prefer-direct never touching the gateway, tools on both routes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dexto.demo.stack import Account, LocalStack
from dexto.errors import AuthFailedError, InsufficientCreditsError
from dexto.llm.execution import Done, Model, TextDelta, ToolCallDelta

pytestmark = pytest.mark.slow

SEL = "anthropic/claude-sonnet-4-5-20250929"
NATIVE = "claude-sonnet-4-5-20250929"
MARKET = "anthropic/claude-sonnet-4.5"
USER_KEY = "sk-ant-user-own-key-f4k3"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
]
Open = Callable[..., Model]


def _env(stack: LocalStack, account: Account | None, *, own_key: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["DEXTO_GATEWAY_URL"] = stack.gateway_url
    env["ANTHROPIC_BASE_URL"] = stack.direct_url("anthropic")
    if account is not None:
        env["DEXTO_API_KEY"] = account.api_key
    if own_key:
        env["ANTHROPIC_API_KEY"] = USER_KEY
    return env


def _upstream_chats(stack: LocalStack) -> int:
    paths = stack.upstream_stats()["paths"]
    return sum(n for p, n in paths.items() if p.endswith("/chat/completions"))


def _run(model: Model, stream: bool, **kw: object) -> tuple[object, list[object]]:
    if not stream:
        return model.complete("hello", **kw), []  # type: ignore[arg-type]
    events = list(model.stream("hello", **kw))  # type: ignore[arg-type]
    assert isinstance(events[-1], Done)
    return events[-1].result, events[:-1]


@pytest.mark.parametrize("stream", [False, True])
def test_via_dexto_with_credits(stack: LocalStack, opened: Open, stream: bool) -> None:
    acct = stack.create_account(f"rich-{stream}@example.com", "5")
    before = len(stack.fake_requests("anthropic"))
    model = opened(SEL, env=_env(stack, acct, own_key=True), session_id="sess-e2e")
    result, events = _run(model, stream, max_tokens=200)
    assert result.route.route == "dexto" and not result.route.fell_back  # type: ignore[attr-defined]
    assert result.route.effective_model == MARKET  # type: ignore[attr-defined]
    assert result.text.startswith("w0 w1")  # type: ignore[attr-defined]
    assert result.credits_remaining is not None  # type: ignore[attr-defined]
    if stream:
        assert sum(isinstance(e, TextDelta) for e in events) >= 10
    assert len(stack.fake_requests("anthropic")) == before  # the direct fake was not touched
    usage = stack.usage(acct)
    assert usage["mtd"]["requests"] == 1
    row = usage["recent"][0]
    assert row["model"] == MARKET and row["sessionId"] == "sess-e2e" and row["source"] == "library"


@pytest.mark.parametrize("stream", [False, True])
def test_exhausted_credits_fall_back_to_own_key(
    stack: LocalStack, opened: Open, stream: bool
) -> None:
    acct = stack.create_account(f"broke-{stream}@example.com", "0")
    model = opened(SEL, env=_env(stack, acct, own_key=True))
    result, events = _run(model, stream)
    route = result.route  # type: ignore[attr-defined]
    assert route.route == "direct" and route.fell_back
    assert route.effective_provider == "anthropic" and route.effective_model == NATIVE
    assert "ANTHROPIC_API_KEY" in route.reason and "exhausted" in route.reason
    assert f"model={NATIVE}" in result.text  # type: ignore[attr-defined]
    assert f"key=…{USER_KEY[-4:]}" in result.text  # type: ignore[attr-defined]
    assert stack.fake_requests("anthropic")[-1]["model"] == NATIVE
    assert stack.usage(acct)["mtd"]["requests"] == 0  # nothing charged
    assert result.credits_remaining is not None  # type: ignore[attr-defined]
    assert result.warnings  # type: ignore[attr-defined]  # low-credit warning


@pytest.mark.parametrize("stream", [False, True])
def test_a_marketplace_spelling_falls_back_with_the_native_id(
    stack: LocalStack, opened: Open, stream: bool
) -> None:
    acct = stack.create_account(f"spelling-{stream}@example.com", "0")
    model = opened(MARKET, env=_env(stack, acct, own_key=True))  # anthropic/claude-sonnet-4.5
    assert model.decision.effective_model == MARKET
    result, _ = _run(model, stream)
    route = result.route  # type: ignore[attr-defined]
    assert route.route == "direct" and route.fell_back and route.effective_model == NATIVE
    assert stack.fake_requests("anthropic")[-1]["model"] == NATIVE
    assert f"model={NATIVE}" in result.text  # type: ignore[attr-defined]
    assert stack.usage(acct)["mtd"]["requests"] == 0


@pytest.mark.parametrize("logged_in", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_a_marketplace_spelling_goes_direct_with_the_native_id(
    stack: LocalStack, opened: Open, stream: bool, logged_in: bool
) -> None:
    acct = stack.create_account(f"direct-spelling-{stream}-{logged_in}@example.com", "5")
    before = _upstream_chats(stack)
    env = _env(stack, acct if logged_in else None, own_key=True)
    model = opened(MARKET, env=env, prefer="direct" if logged_in else None)
    assert model.decision.route == "direct" and model.decision.effective_model == NATIVE
    assert f"This call sends {NATIVE}" in model.decision.reason
    result, _ = _run(model, stream)
    route = result.route  # type: ignore[attr-defined]
    assert route.route == "direct" and not route.fell_back and route.effective_model == NATIVE
    assert stack.fake_requests("anthropic")[-1]["model"] == NATIVE
    assert f"model={NATIVE}" in result.text  # type: ignore[attr-defined]
    assert f"key=…{USER_KEY[-4:]}" in result.text  # type: ignore[attr-defined]
    assert stack.usage(acct)["mtd"]["requests"] == 0
    assert _upstream_chats(stack) == before


@pytest.mark.parametrize("stream", [False, True])
def test_exhausted_without_own_key_raises(stack: LocalStack, opened: Open, stream: bool) -> None:
    acct = stack.create_account(f"nokey-{stream}@example.com", "0")
    before = len(stack.fake_requests("anthropic"))
    model = opened(SEL, env=_env(stack, acct, own_key=False))
    with pytest.raises(InsufficientCreditsError) as info:
        _run(model, stream)
    err = info.value
    assert err.balance_usd is not None and float(err.balance_usd) == 0
    assert "ANTHROPIC_API_KEY" in err.fix and "top up" in err.fix
    assert err.to_dict()["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert len(stack.fake_requests("anthropic")) == before


def test_fallback_disabled_by_agent_policy_raises(
    stack: LocalStack, opened: Open, tmp_path: Path
) -> None:
    acct = stack.create_account("nofallback@example.com", "0")
    agent = tmp_path / "agent.yml"
    agent.write_text(
        f"llm:\n  provider: anthropic\n  model: {NATIVE}\n  routing:\n"
        "    fallbackOnInsufficientCredits: false\n"
    )
    model = opened(agent=agent, env=_env(stack, acct, own_key=True))
    with pytest.raises(InsufficientCreditsError, match="Insufficient Dexto credits") as info:
        model.complete("hi")
    assert "fallbackOnInsufficientCredits" in info.value.fix


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_survive_both_routes(stack: LocalStack, opened: Open, stream: bool) -> None:
    rich = stack.create_account(f"tools-{stream}@example.com", "5")
    broke = stack.create_account(f"tools0-{stream}@example.com", "0")
    for acct, route in ((rich, "dexto"), (broke, "direct")):
        model = opened(SEL, env=_env(stack, acct, own_key=True))
        result, events = _run(model, stream, tools=TOOLS, max_tokens=200)
        assert result.route.route == route  # type: ignore[attr-defined]
        calls = result.tool_calls  # type: ignore[attr-defined]
        assert [c.name for c in calls] == ["lookup"]
        assert calls[0].parsed_arguments() == {"q": "fake"}
        if stream:
            assert any(isinstance(e, ToolCallDelta) for e in events)


def test_direct_only_provider_never_touches_gateway(stack: LocalStack, opened: Open) -> None:
    acct = stack.create_account("ollama@example.com", "5")
    before = _upstream_chats(stack)
    env = _env(stack, acct, own_key=False)
    env["OLLAMA_BASE_URL"] = stack.direct_url("openai")
    model = opened("ollama/llama3.2", env=env)
    assert model.decision.route == "direct"
    result = model.complete("hi")
    assert "model=llama3.2 key=none" in result.text
    assert isinstance(list(model.stream("hi"))[-1], Done)
    assert stack.usage(acct)["mtd"]["requests"] == 0
    assert _upstream_chats(stack) == before


@pytest.mark.parametrize("stream", [False, True])
def test_prefer_direct_never_touches_gateway(stack: LocalStack, opened: Open, stream: bool) -> None:
    acct = stack.create_account(f"prefer-{stream}@example.com", "5")
    before = _upstream_chats(stack)
    model = opened(SEL, env=_env(stack, acct, own_key=True), prefer="direct")
    result, _ = _run(model, stream)
    assert result.route.route == "direct" and not result.route.fell_back  # type: ignore[attr-defined]
    assert f"key=…{USER_KEY[-4:]}" in result.text  # type: ignore[attr-defined]
    assert stack.usage(acct)["mtd"]["requests"] == 0
    assert _upstream_chats(stack) == before


def test_refused_dexto_key_is_auth_failed_not_a_fallback(stack: LocalStack, opened: Open) -> None:
    fake = Account("acct_x", "x@example.com", "dxk_" + "0" * 40)
    before = len(stack.fake_requests("anthropic"))
    model = opened(SEL, env=_env(stack, fake, own_key=True))
    with pytest.raises(AuthFailedError) as info:
        model.complete("hi")
    assert fake.api_key not in str(info.value) + str(info.value.to_dict())
    assert "dexto login" in info.value.fix
    assert len(stack.fake_requests("anthropic")) == before


@pytest.mark.anyio
async def test_async_complete_and_stream_fall_back(stack: LocalStack) -> None:
    from dexto.llm.execution import open_model

    acct = stack.create_account("async@example.com", "0")
    async with open_model(SEL, env=_env(stack, acct, own_key=True)) as model:
        result = await model.acomplete("hello")
        assert result.route.fell_back and f"model={NATIVE}" in result.text
        texts = []
        async for event in model.astream("hello"):
            if isinstance(event, TextDelta):
                texts.append(event.text)
            elif isinstance(event, Done):
                assert event.result.route.fell_back
        assert "".join(texts) == result.text
    rich = stack.create_account("async-rich@example.com", "5")
    async with open_model(SEL, env=_env(stack, rich, own_key=True)) as model:
        result = await model.acomplete("hello", max_tokens=100)
        assert result.route.route == "dexto"
        events = [e async for e in model.astream("hello", max_tokens=100)]
        assert isinstance(events[-1], Done) and events[-1].result.route.route == "dexto"
