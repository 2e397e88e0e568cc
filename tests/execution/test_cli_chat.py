"""``dexto chat`` and ``dexto demo`` through the real console script; no secret in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dexto.demo.stack import UPSTREAM_KEY, LocalStack

pytestmark = pytest.mark.slow

DEXTO = str(Path(sys.executable).with_name("dexto"))
SEL = "anthropic/claude-sonnet-4-5-20250929"
OWN = "sk-ant-cli-own-key-c1c1"


def _chat(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEXTO, "chat", *args], env=env, capture_output=True, text=True, input=stdin, timeout=60
    )


def _env(stack: LocalStack, dexto_key: str | None, own: bool) -> dict[str, str]:
    env = dict(
        os.environ,
        DEXTO_GATEWAY_URL=stack.gateway_url,
        ANTHROPIC_BASE_URL=stack.direct_url("anthropic"),
    )
    if dexto_key:
        env["DEXTO_API_KEY"] = dexto_key
    if own:
        env["ANTHROPIC_API_KEY"] = OWN
    return env


def _no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_json_shape_via_dexto_then_fallback(stack: LocalStack) -> None:
    rich = stack.create_account("cli-rich@example.com", "5")
    done = _chat(_env(stack, rich.api_key, True), SEL, "-m", "hello", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {"text", "route", "usage", "creditsRemaining"}
    assert set(doc["route"]) == {
        "route",
        "effectiveProvider",
        "effectiveModel",
        "fellBack",
        "reason",
    }
    assert doc["route"]["route"] == "dexto" and doc["route"]["fellBack"] is False
    assert doc["creditsRemaining"] is not None
    broke = stack.create_account("cli-broke@example.com", "0")
    done = _chat(_env(stack, broke.api_key, True), SEL, "-m", "hello", "--json")
    doc = json.loads(done.stdout)
    assert doc["route"]["fellBack"] is True and doc["route"]["route"] == "direct"
    assert doc["route"]["effectiveModel"] == "claude-sonnet-4-5-20250929"
    assert "key=…c1c1" in doc["text"]
    for out in (done.stdout + done.stderr,):
        _no_secrets(out, rich.api_key, broke.api_key, OWN, UPSTREAM_KEY)


def test_streaming_text_then_route_line(stack: LocalStack) -> None:
    broke = stack.create_account("cli-stream@example.com", "0")
    done = _chat(_env(stack, broke.api_key, True), SEL, "-m", "hello")
    assert done.returncode == 0
    assert "you said 'hello'" in done.stdout
    assert "direct (your key)" in done.stderr and "ANTHROPIC_API_KEY" in done.stderr
    _no_secrets(done.stdout + done.stderr, broke.api_key, OWN)


@pytest.mark.parametrize(
    "args,code",
    [
        (("dexto/whatever",), "PROVIDER_NOT_ALLOWED"),
        (("nope/model",), "UNKNOWN_PROVIDER"),
        (("anthropic",), "INVALID_MODEL_ID"),
        ((SEL,), "NO_CREDENTIALS"),
    ],
)
def test_selection_errors_use_route_codes(
    stack: LocalStack, args: tuple[str, ...], code: str
) -> None:
    done = _chat(_env(stack, None, False), *args, "-m", "hi", "--json")
    assert done.returncode != 0
    assert json.loads(done.stdout)["error"]["code"] == code


def test_execution_errors_are_typed_and_redacted(stack: LocalStack) -> None:
    broke = stack.create_account("cli-err@example.com", "0")
    done = _chat(_env(stack, broke.api_key, False), SEL, "-m", "hi", "--json")
    err = json.loads(done.stdout)["error"]
    assert done.returncode != 0 and err["code"] == "INSUFFICIENT_CREDITS"
    assert "ANTHROPIC_API_KEY" in err["fix"]
    bogus = "dxk_" + "7" * 40
    done = _chat(_env(stack, bogus, False), SEL, "-m", "hi", "--json")
    assert json.loads(done.stdout)["error"]["code"] == "AUTH_FAILED"
    env = _env(stack, None, True)
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9/v1"
    done = _chat(env, SEL, "-m", "hi", "--json")
    assert json.loads(done.stdout)["error"]["code"] == "UPSTREAM_ERROR"
    done = _chat(env, SEL, "-m", "hi")
    assert done.returncode != 0 and "error:" in done.stderr and "fix:" in done.stderr
    _no_secrets(done.stdout + done.stderr, bogus, OWN, broke.api_key)


def test_repl_keeps_the_conversation(stack: LocalStack) -> None:
    env = _env(stack, None, True)
    done = _chat(env, SEL, stdin="first\nsecond\n/exit\n")
    assert done.returncode == 0
    assert "you said 'first'" in done.stdout and "you said 'second'" in done.stdout
    assert done.stderr.count("direct (your key)") == 2


def test_json_needs_a_prompt() -> None:
    done = subprocess.run(
        [DEXTO, "chat", SEL, "--json"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode != 0
    assert json.loads(done.stdout)["error"]["code"] == "INVALID_CONFIG"


def test_gateway_and_fake_logs_hold_no_secret(stack: LocalStack) -> None:
    acct = stack.create_account("logs@example.com", "5")
    _chat(_env(stack, acct.api_key, True), SEL, "-m", "hello", "--json")
    logs = "".join(p.read_text(errors="replace") for p in (stack.home / "logs").glob("*.log"))
    _no_secrets(logs, acct.api_key, OWN, UPSTREAM_KEY)


def test_demo_runs_the_whole_story_and_cleans_up() -> None:
    done = subprocess.run([DEXTO, "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("via Dexto credits ·") == 3
    assert out.count("direct (your key) ·") == 2
    assert "continued with your ANTHROPIC_API_KEY" in out
    assert "month to date: 3 requests" in out
    assert "All demo processes stopped." in out
    _no_secrets(out + done.stderr, "sk-ant-demo-not-a-real-key-f4k3", UPSTREAM_KEY)
