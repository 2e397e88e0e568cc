"""``dexto auth list/set/remove``: source names only, keys from stdin, 0600, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.local.conftest import Run, file_mode

KEY = "sk-ant-api03-SECRET-abcdef0123456789"


def test_set_from_stdin_list_and_remove(dexto: Run, home: Path) -> None:
    r = dexto("auth", "set", "anthropic", input=KEY + "\n")
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr
    assert file_mode(home / "auth.json") == 0o600
    assert json.loads((home / "auth.json").read_text()) == {
        "anthropic": {"type": "api", "key": KEY}
    }
    r = dexto(
        "auth",
        "list",
        "--json",
        env={"ANTHROPIC_API_KEY": "sk-env-OTHER-SECRET", "DEXTO_API_KEY": "dxk_ENV_SECRET"},
    )
    assert r.returncode == 0
    assert "SECRET" not in r.stdout
    data = json.loads(r.stdout)
    assert data["providers"]["anthropic"] == {
        "sources": ["env:ANTHROPIC_API_KEY", "auth-store:anthropic"],
        "requiresKey": True,
        "active": "env:ANTHROPIC_API_KEY",
    }
    assert data["dexto"] == {"sources": ["env:DEXTO_API_KEY"], "active": "env:DEXTO_API_KEY"}
    assert data["providers"]["ollama"]["active"] == "none-required"
    assert "dexto" not in data["providers"]
    assert data["store"] == {"anthropic": "api"}
    text = dexto("auth", "list").stdout
    assert "auth-store:anthropic" in text and KEY not in text
    assert dexto("auth", "remove", "anthropic").returncode == 0
    assert json.loads((home / "auth.json").read_text()) == {}
    assert "no stored anthropic key" in dexto("auth", "remove", "anthropic").stdout


def test_stored_key_is_used_by_routing(dexto: Run) -> None:
    assert dexto("auth", "set", "openai", input="sk-openai-xyz\n").returncode == 0
    r = dexto("route", "openai/gpt-5-mini", "--json")
    assert json.loads(r.stdout)["credentialSource"] == "auth-store:openai"


@pytest.mark.parametrize(
    "name, stdin, words",
    [
        ("dexto", KEY, "dexto login"),
        ("bedrock", KEY, "cloud"),
        ("ollama", KEY, "needs no key"),
        ("nosuch", KEY, "provider id"),
        ("Bad Name", KEY, "lower-case"),
        ("anthropic", "", "empty"),
        ("anthropic", "two words", "spaces"),
    ],
)
def test_set_refuses_bad_input(dexto: Run, home: Path, name: str, stdin: str, words: str) -> None:
    r = dexto("auth", "set", name, "--json", input=stdin + "\n")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert words in err["message"] + err["fix"]
    assert KEY not in r.stdout + r.stderr
    assert not (home / "auth.json").exists()


def test_corrupt_auth_file_is_reported_never_overwritten(dexto: Run, home: Path) -> None:
    path = home / "auth.json"
    text = '{"anthropic": {"type": "api", "key": "' + KEY + '"},\n  "openai": oops}'
    path.write_text(text)
    path.chmod(0o600)
    for args, stdin in (
        (("auth", "set", "openai"), "sk-x\n"),
        (("auth", "list"), None),
        (("logout",), None),
        (("auth", "remove", "anthropic"), None),
    ):
        r = dexto(*args, input=stdin)
        assert r.returncode == 2, args
        assert f"{path}:2" in r.stderr and "fix:" in r.stderr
        assert KEY not in r.stdout + r.stderr
        assert path.read_text() == text


@pytest.mark.parametrize(
    "args",
    [
        ("chat", "openai/gpt-4o-mini", "-m", "hi"),  # read for routing, then for the request's key
        ("auth", "set", "groq"),  # read, then written back 0600
    ],
)
def test_a_wide_store_is_warned_about_once_per_command(
    dexto: Run, home: Path, args: tuple[str, ...]
) -> None:
    path = home / "auth.json"
    path.write_text(json.dumps({"openai": {"type": "api", "key": "sk-openai-wide-0123"}}))
    path.chmod(0o644)
    r = dexto(
        *args,
        input="gsk_wide_0123\n",
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "DEXTO_API_KEY": ""},
    )
    assert r.stderr.count("is readable by others (mode 644)") == 1, r.stderr
    assert "sk-openai-wide-0123" not in r.stdout + r.stderr
