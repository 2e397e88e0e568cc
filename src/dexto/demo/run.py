"""``dexto demo``: credits run out mid-conversation and the next turn continues on your own key.

Starts the fake OpenRouter upstream, a fake Anthropic API and a real gateway (SQLite) under a
temporary ``DEXTO_HOME``; creates an account with a few cents through the admin CLI; then talks to
``anthropic/claude-sonnet-4-5-20250929`` with ``DEXTO_API_KEY`` and a (fake) ``ANTHROPIC_API_KEY``
set — exactly what a user's environment would hold. Every process is stopped on the way out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, TextIO

from dexto.demo.stack import LocalStack

__all__ = ["SCRIPT", "run_demo"]

SELECTION = "anthropic/claude-sonnet-4-5-20250929"
CREDITS_USD = "0.03"
TURN_COST_USD = 0.01  # the fake upstream bills each turn this much, so the cents run out fast
DEMO_ANTHROPIC_KEY = "sk-ant-demo-not-a-real-key-f4k3"
SCRIPT = (
    "Hi! Plan a three-step walk through Lisbon.",
    "Add a coffee stop to step two.",
    "What should I pack?",
    "Summarise the plan in one sentence.",
    "Thanks — anything else?",
)


def _say(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


def _turn(model: Any, messages: list[dict[str, Any]], out: TextIO) -> None:
    from dexto.llm.execution import Done, TextDelta
    from dexto.presentation import route_line

    result = None
    out.write("assistant> ")
    for event in model.stream(messages, max_tokens=300, fake={"cost": TURN_COST_USD}):
        if isinstance(event, TextDelta):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Done):
            result = event.result
    assert result is not None
    _say(out)
    _say(out, "  " + route_line(result))
    messages.append(result.to_message())


def _conversation(stack: LocalStack, api_key: str, out: TextIO) -> None:
    from dexto.llm.execution import open_model

    env = {
        **stack.env(),
        "DEXTO_API_KEY": api_key,
        "DEXTO_GATEWAY_URL": stack.gateway_url,
        "ANTHROPIC_API_KEY": DEMO_ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": stack.direct_url("anthropic"),
    }
    with open_model(SELECTION, env=env, session_id="demo-session", source="demo") as model:
        _say(out, f"Selection: {SELECTION}")
        _say(out, f"Decision:  {model.decision.reason}")
        _say(out)
        messages: list[dict[str, Any]] = []
        for prompt in SCRIPT:
            _say(out, f"you> {prompt}")
            messages.append({"role": "user", "content": prompt})
            _turn(model, messages, out)
            _say(out)


def _ledger(stack: LocalStack, account: Any, out: TextIO) -> None:
    usage = stack.usage(account)
    _say(out, f"Ledger for {usage['account']['email']} (from `dexto gateway usage --json`):")
    for row in reversed(usage["recent"]):
        _say(
            out,
            f"  {row['ts']}  {row['model']:<28} ${row['costUsd']}  "
            f"session={row['sessionId']} source={row['source']}",
        )
    _say(
        out,
        f"  month to date: {usage['mtd']['requests']} requests, "
        f"${usage['mtd']['costUsd']}; balance ${usage['balanceUsd']}",
    )
    direct = stack.fake_requests("anthropic")
    _say(
        out,
        f"Fake Anthropic API answered {len(direct)} turn(s) with your own key "
        f"(model {', '.join(sorted({str(r['model']) for r in direct})) or '-'}).",
    )


def run_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="dexto-demo-") as tmp:
        home = Path(tmp)
        _say(
            out,
            "Dexto demo — offline: fake OpenRouter upstream, fake Anthropic API, real "
            "gateway on SQLite",
        )
        with LocalStack(home, direct=("anthropic",)) as stack:
            _say(
                out,
                f"  gateway {stack.gateway_url}   upstream {stack.upstream_url}   "
                f"anthropic {stack.direct_url('anthropic')}",
            )
            account = stack.create_account("demo@example.com", CREDITS_USD)
            _say(
                out,
                f"  account {account.email} created with ${CREDITS_USD} of Dexto credits; "
                f"each turn costs ${TURN_COST_USD:.2f}",
            )
            _say(out)
            _conversation(stack, account.api_key, out)
            _ledger(stack, account, out)
        _say(out, "All demo processes stopped.")
    return 0
