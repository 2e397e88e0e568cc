"""A stored own key that cannot be used — one ``check_sendable`` refuses, or an expired OAuth token
that cannot be refreshed — blocks ``dexto chat`` only when the call needs it: through the real
console script, a real gateway and a fake Anthropic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dexto.demo.stack import LocalStack

pytestmark = pytest.mark.slow

DEXTO = str(Path(sys.executable).with_name("dexto"))
SEL = "anthropic/claude-sonnet-4-5-20250929"
PASTED = "sk-ant-abc…xyz"  # a shortened copy: '…' cannot be sent in an HTTP header
OAUTH_ACCESS = "sk-ant-oat-expired-access-7777"
OAUTH_REFRESH = "sk-ant-ort-refresh-token-8888"
# entry → (code on a 402, words naming the problem)
BROKEN = {
    "non-ascii-key": ("INVALID_CONFIG", "non-ASCII"),
    "expired-oauth": ("AUTH_FAILED", "OAuth token for anthropic"),
}


def _store_broken_entry(home: Path, kind: str) -> None:
    if kind == "non-ascii-key":
        entry: dict[str, object] = {"type": "api", "key": PASTED}
    else:  # expired a minute ago; no refresher is registered for anthropic
        entry = {
            "type": "oauth",
            "access": OAUTH_ACCESS,
            "refresh": OAUTH_REFRESH,
            "expires": int(time.time() * 1000) - 60_000,
        }
    (home / "auth.json").write_text(json.dumps({"anthropic": entry}), "utf-8")
    (home / "auth.json").chmod(0o600)


def _chat(stack: LocalStack, dexto_key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        DEXTO_GATEWAY_URL=stack.gateway_url,
        ANTHROPIC_BASE_URL=stack.direct_url("anthropic"),
        DEXTO_API_KEY=dexto_key,
    )
    return subprocess.run(
        [DEXTO, "chat", SEL, "-m", "hello", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _clean(r: subprocess.CompletedProcess[str], *secrets: str) -> None:
    out = r.stdout + r.stderr
    assert "Traceback" not in out and "abc…xyz" not in out
    assert OAUTH_ACCESS not in out and OAUTH_REFRESH not in out
    for secret in secrets:
        assert secret not in out


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("as_json", [False, True])
def test_a_gateway_paid_call_is_not_blocked_by_an_unusable_fallback_key(
    stack: LocalStack, isolated_env: Path, as_json: bool, kind: str
) -> None:
    _store_broken_entry(isolated_env, kind)
    rich = stack.create_account(f"fb-rich-{kind}-{as_json}@example.com", "5")
    r = _chat(stack, rich.api_key, *(["--json"] if as_json else []))
    assert r.returncode == 0, r.stdout + r.stderr
    if as_json:
        doc = json.loads(r.stdout)
        assert doc["route"]["route"] == "dexto" and doc["route"]["fellBack"] is False
    else:
        assert r.stdout.strip() and "via Dexto credits" in r.stderr
    warnings = [w for w in r.stderr.splitlines() if w.startswith("warning: auth-store:")]
    assert len(warnings) == 1, r.stderr
    assert "auth-store:anthropic" in warnings[0] and BROKEN[kind][1] in warnings[0]
    assert "dexto auth set anthropic" in warnings[0]
    _clean(r, rich.api_key)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_the_unusable_fallback_key_is_a_typed_error_when_credits_run_out(
    stack: LocalStack, isolated_env: Path, kind: str
) -> None:
    _store_broken_entry(isolated_env, kind)
    code, problem = BROKEN[kind]
    broke = stack.create_account(f"fb-broke-{kind}@example.com", "0")
    for args in ([], ["--json"]):
        r = _chat(stack, broke.api_key, *args)
        assert r.returncode == 2, r.stdout + r.stderr
        if args:
            error = json.loads(r.stdout)["error"]
            assert error["code"] == code
            text = json.dumps(error, ensure_ascii=False)
        else:
            text = r.stderr
        assert "Dexto credits ran out" in text and "auth-store:anthropic" in text, text
        assert problem in text and "dexto auth set anthropic" in text, text
        _clean(r, broke.api_key)
    sent = json.dumps(stack.fake_requests("anthropic"), ensure_ascii=False)
    assert "abc" not in sent and OAUTH_ACCESS not in sent
