"""``dexto login/logout/whoami/billing`` against a real gateway process on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local.conftest import GatewayProc, Run, cli_env, file_mode

pytestmark = pytest.mark.slow
CODE = re.compile(r"enter the code ([A-Z]{4}-[A-Z]{4})")


def _env(gw: GatewayProc) -> dict[str, str]:
    return {"DEXTO_GATEWAY_URL": gw.url + "/v1/"}  # a trailing /v1 is tolerated


def _device_login(gw: GatewayProc, *, deny: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dexto.cli.main", "login", "--json"],
        env=cli_env(_env(gw)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        m = CODE.search(line)
        if m:
            assert f"{gw.url}/device" in line
            page = gw.approve(m.group(1), deny=deny)
            assert page.status_code == 200
            break
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, seen + err)


def test_device_flow_approved_in_the_browser_stores_the_key(
    gateway: GatewayProc, home: Path, dexto: Run
) -> None:
    (home / "auth.json").write_text(json.dumps({"anthropic": {"type": "api", "key": "sk-a"}}))
    r = _device_login(gateway)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "email": gateway.email,
        "balanceUsd": "1.000000",
        "mtd": {"costUsd": "0.000000", "requests": 0},
    }
    store = json.loads((home / "auth.json").read_text())
    assert store["anthropic"] == {"type": "api", "key": "sk-a"}
    assert store["dexto"]["type"] == "api" and store["dexto"]["key"].startswith("dxk_")
    assert store["dexto"]["key"] not in r.stdout + r.stderr
    assert file_mode(home / "auth.json") == 0o600
    who = dexto("whoami", "--json", env=_env(gateway))
    assert json.loads(who.stdout)["email"] == gateway.email
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json")
    assert json.loads(r.stdout)["route"] == "dexto"  # credits preferred by default


def test_device_flow_denied_stores_nothing(gateway: GatewayProc, home: Path) -> None:
    r = _device_login(gateway, deny=True)
    assert r.returncode == 2
    assert "denied" in r.stdout
    assert not (home / "auth.json").exists()


def test_api_key_login_whoami_billing_logout(gateway: GatewayProc, home: Path, dexto: Run) -> None:
    env = _env(gateway)
    (home / "auth.json").write_text(json.dumps({"openai": {"type": "api", "key": "sk-o"}}))
    r = dexto("login", "--api-key", gateway.api_key, env=env)
    assert r.returncode == 0, r.stderr
    assert gateway.email in r.stdout and gateway.api_key not in r.stdout + r.stderr
    for args in (("whoami", "--json"), ("billing", "status", "--json")):
        out = json.loads(dexto(*args, env=env).stdout)
        assert out == {
            "email": gateway.email,
            "balanceUsd": "1.000000",
            "mtd": {"costUsd": "0.000000", "requests": 0},
        }
    text = dexto("whoami", env=env).stdout
    assert "auth-store:dexto" in text and gateway.api_key not in text
    assert dexto("logout").returncode == 0
    assert json.loads((home / "auth.json").read_text()) == {
        "openai": {"type": "api", "key": "sk-o"}
    }
    r = dexto("whoami", "--json", env=env)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "NO_CREDENTIALS"


@pytest.mark.parametrize("key", ["dxk_not_a_real_key_000000000000", "dxk_" + "A" * 40])
def test_bad_api_key_changes_nothing(
    gateway: GatewayProc, home: Path, dexto: Run, key: str
) -> None:
    before = json.dumps({"dexto": {"type": "api", "key": gateway.api_key}})
    (home / "auth.json").write_text(before)
    r = dexto("login", "--api-key", "-", "--json", env=_env(gateway), input=key + "\n")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "AUTH_FAILED" and "INVALID_API_KEY" in err["message"]
    assert key not in r.stdout + r.stderr
    assert (home / "auth.json").read_text() == before


def test_unreachable_gateway_is_a_clear_error(dexto: Run, home: Path) -> None:
    r = dexto("login", "--api-key", "dxk_abc", env={"DEXTO_GATEWAY_URL": "http://127.0.0.1:9"})
    assert r.returncode == 2
    assert "could not reach the Dexto gateway at http://127.0.0.1:9" in r.stderr
    assert "DEXTO_GATEWAY_URL" in r.stderr
    assert not (home / "auth.json").exists()
