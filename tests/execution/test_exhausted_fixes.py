"""The fix of ``InsufficientCreditsError`` (SPEC §3, §4, §7) names the credential the decision
would read — a custom model's ``apiKeyEnv``, the agent's ``$VAR`` — and an openrouter selection's
native alternative; following it makes the next decision fall back. A 402 after output was
delivered says the next request (not this one) continues with your key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from dexto.errors import InsufficientCreditsError
from dexto.llm.execution import Done, TextDelta, open_model

DXK = "dxk_unit_secret_key_fixes"
_402 = {
    "error": {
        "code": "INSUFFICIENT_CREDITS",
        "type": "insufficient_credits",
        "message": "Insufficient Dexto credits. Balance: $0.00. Top up.",
    }
}
CUSTOM_OR = {"name": "z-ai/glm-4.5-air:free", "provider": "openrouter", "apiKeyEnv": "MY_OR_KEY"}
AGENT_REF = "llm:\n  provider: anthropic\n  model: claude-sonnet-4-5-20250929\n  apiKey: $MY_ANTH\n"
AGENT_NO_FALLBACK = (
    "llm:\n  provider: anthropic\n  model: claude-sonnet-4-5-20250929\n  routing:\n"
    "    fallbackOnInsufficientCredits: false\n"
)

# (case, selection, agent file, custom model, env, fix must contain, fix must not contain,
#  env that follows the fix — the next decision then has a fallback (None: nothing to set))
TABLE = [
    (
        "agent $VAR unset, provider variable set",
        None,
        AGENT_REF,
        None,
        {"ANTHROPIC_API_KEY": "sk-ant-own"},
        ["top up", "to continue with your own Anthropic key, set MY_ANTH"],
        ["ANTHROPIC_API_KEY", "fallbackOnInsufficientCredits"],
        {"MY_ANTH": "sk-ant-named"},
    ),
    (
        "custom model apiKeyEnv unset, provider variable set",
        "openrouter/z-ai/glm-4.5-air:free",
        None,
        CUSTOM_OR,
        {"OPENROUTER_API_KEY": "sk-or-own"},
        ["top up", "to continue with your own OpenRouter key, set MY_OR_KEY"],
        ["OPENROUTER_API_KEY", "fallbackOnInsufficientCredits"],
        {"MY_OR_KEY": "sk-or-named"},
    ),
    (
        "openrouter selection with a native alternative",
        "openrouter/anthropic/claude-sonnet-4.5",
        None,
        None,
        {"ANTHROPIC_API_KEY": "sk-ant-own"},
        [
            "set OPENROUTER_API_KEY",
            "or switch to `anthropic/claude-sonnet-4-5-20250929` (your ANTHROPIC_API_KEY)",
        ],
        ["fallbackOnInsufficientCredits"],
        {"OPENROUTER_API_KEY": "sk-or-own"},
    ),
    (
        "native selection, no key",
        "anthropic/claude-sonnet-4-5-20250929",
        None,
        None,
        {},
        ["top up", "set ANTHROPIC_API_KEY"],
        ["switch to", "fallbackOnInsufficientCredits"],
        {"ANTHROPIC_API_KEY": "sk-ant-own"},
    ),
    (
        "fallback disabled by the agent, key present",
        None,
        AGENT_NO_FALLBACK,
        None,
        {"ANTHROPIC_API_KEY": "sk-ant-own"},
        ["fallbackOnInsufficientCredits: true to continue with your ANTHROPIC_API_KEY"],
        ["switch to"],
        None,
    ),
]


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    return dict(
        os.environ,
        DEXTO_HOME=str(home),
        DEXTO_API_KEY=DXK,
        DEXTO_GATEWAY_URL="http://gw.test",
        **extra,
    )


@pytest.mark.parametrize(
    "case,sel,agent,custom,extra,wanted,unwanted,then", TABLE, ids=[t[0] for t in TABLE]
)
def test_the_exhausted_fix_names_what_the_decision_reads(
    isolated_env: Path,
    tmp_path: Path,
    case: str,
    sel: str | None,
    agent: str | None,
    custom: dict[str, str] | None,
    extra: dict[str, str],
    wanted: list[str],
    unwanted: list[str],
    then: dict[str, str] | None,
) -> None:
    if custom is not None:
        (isolated_env / "models").mkdir()
        (isolated_env / "models" / "custom-models.json").write_text(
            json.dumps({"version": 1, "models": [custom]})
        )
    agent_path = None
    if agent is not None:
        agent_path = tmp_path / "agent.yml"
        agent_path.write_text(agent)
    seen: list[str] = []

    def gw(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.host)
        return httpx.Response(402, json=_402, headers={"x-dexto-credits-remaining": "0.000000"})

    env = _env(isolated_env, extra)
    with open_model(sel, agent=agent_path, env=env, transport=httpx.MockTransport(gw)) as model:
        assert model.decision.route == "dexto" and model.decision.fallback is None
        with pytest.raises(InsufficientCreditsError) as info:
            model.complete("hi")
    fix = info.value.fix
    assert seen == ["gw.test"]
    for words in wanted:
        assert words in fix
    for words in unwanted:
        assert words not in fix
    assert "sk-" not in fix and DXK not in fix
    if then is not None:  # the fix works: following it gives the next request a fallback
        with open_model(sel, agent=agent_path, env={**env, **then}) as model:
            assert model.decision.fallback is not None


def _sse(*docs: object) -> bytes:
    return b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)


def test_a_402_after_output_says_the_next_request_continues(isolated_env: Path) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "partial "}, "finish_reason": None}]}
    answers = [_sse(chunk, _402), _sse(_402)]
    hosts: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hosts.append(req.url.host)
        if req.url.host == "gw.test":
            body = answers.pop(0)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(
            200,
            json={
                "content": [{"type": "text", "text": "direct answer"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 2},
            },
        )

    env = _env(
        isolated_env,
        {"ANTHROPIC_API_KEY": "sk-ant-own", "ANTHROPIC_BASE_URL": "http://anthropic.test/v1"},
    )
    sel = "anthropic/claude-sonnet-4-5-20250929"
    with open_model(sel, env=env, transport=httpx.MockTransport(handler)) as model:
        got: list[str] = []
        with pytest.raises(InsufficientCreditsError) as info:
            for event in model.stream("hi"):
                if isinstance(event, TextDelta):
                    got.append(event.text)
        assert got == ["partial "] and hosts == ["gw.test"]
        fix = info.value.fix
        assert "retry: the next request continues with your ANTHROPIC_API_KEY" in fix
        assert "meanwhile" not in fix
        # what the fix says is true: the retry falls back to the own key
        events = list(model.stream("hi"))
    last = events[-1]
    assert isinstance(last, Done) and last.result.route.fell_back
    assert hosts == ["gw.test", "gw.test", "anthropic.test"]
