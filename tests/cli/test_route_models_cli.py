"""`dexto route` and `dexto models` through the real entry point (exact JSON contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._http import ModelsServer
from tests._samples import SAMPLE_ROWS
from tests.cli.conftest import Run

ROUTE_KEYS = {
    "provider",
    "model",
    "route",
    "effectiveProvider",
    "effectiveModel",
    "baseURL",
    "credentialSource",
    "mappingVerified",
    "fallback",
    "reason",
    "alternatives",
    "marketplaceSource",
}
SECRETS = {"DEXTO_API_KEY": "dxk_supersecret_123", "ANTHROPIC_API_KEY": "sk-ant-secret-456"}


def test_route_json_contract_via_dexto_with_fallback(dexto: Run) -> None:
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=SECRETS)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == ROUTE_KEYS
    assert out["route"] == "dexto" and out["effectiveModel"] == "anthropic/claude-sonnet-4.5"
    assert out["fallback"] == {
        "route": "direct",
        "effectiveProvider": "anthropic",
        "effectiveModel": "claude-sonnet-4-5-20250929",
        "on": "INSUFFICIENT_CREDITS",
    }
    for secret in SECRETS.values():
        assert secret not in r.stdout + r.stderr


def test_route_prefer_direct_flag(dexto: Run) -> None:
    r = dexto(
        "route", "anthropic/claude-sonnet-4-5-20250929", "--prefer", "direct", "--json", env=SECRETS
    )
    out = json.loads(r.stdout)
    assert (out["route"], out["credentialSource"], out["fallback"]) == (
        "direct",
        "env:ANTHROPIC_API_KEY",
        None,
    )


def test_route_from_agent_file(dexto: Run, tmp_path: Path) -> None:
    agent = tmp_path / "a.yml"
    agent.write_text("llm:\n  provider: openrouter\n  model: z-ai/glm-4.5-air:free\n")
    r = dexto("route", "--agent", str(agent), "--json", env={"DEXTO_API_KEY": "dxk_1"})
    out = json.loads(r.stdout)
    assert (out["provider"], out["model"], out["effectiveModel"]) == (
        "openrouter",
        "z-ai/glm-4.5-air:free",
        "z-ai/glm-4.5-air:free",
    )


def test_preferences_file_is_honoured(dexto: Run, isolated_env: Path) -> None:
    (isolated_env / "preferences.yml").write_text("preferDextoCredits: false\n")
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=SECRETS)
    assert json.loads(r.stdout)["route"] == "direct"


@pytest.mark.parametrize(
    "args,code",
    [
        (["route", "anthropic/claude-sonnet-4-5-20250929"], "NO_CREDENTIALS"),
        (["route", "dexto/anthropic/claude-sonnet-4.5"], "PROVIDER_NOT_ALLOWED"),
        (["route", "antropic/claude"], "UNKNOWN_PROVIDER"),
        (["route", "anthropic/"], "INVALID_MODEL_ID"),
        (["route", "no-slash"], "INVALID_MODEL_ID"),
        (["route"], "INVALID_MODEL_ID"),
    ],
)
def test_route_errors(dexto: Run, args: list[str], code: str) -> None:
    r = dexto(*args, "--json")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == code and err["message"] and err["fix"]


def test_route_invalid_agent_file(dexto: Run, tmp_path: Path) -> None:
    agent = tmp_path / "bad.yml"
    agent.write_text("llm:\n  provider: dexto\n  model: x\n")
    r = dexto("route", "--agent", str(agent), "--json")
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 2 and err["code"] == "PROVIDER_NOT_ALLOWED"
    assert str(agent) in err["message"]
    agent.write_text("llm: {provider: anthropic, model: m, apiKey: sk-raw-secret}\n")
    r = dexto("route", "--agent", str(agent), "--json")
    assert json.loads(r.stdout)["error"]["code"] == "INVALID_CONFIG"
    assert "sk-raw-secret" not in r.stdout + r.stderr


def test_route_human_output(dexto: Run) -> None:
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", env=SECRETS)
    assert r.returncode == 0 and "via Dexto credits" in r.stdout and "fallback" in r.stdout
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929")
    assert r.returncode == 2 and "dexto login" in r.stderr


def test_models_json_contract(dexto: Run) -> None:
    r = dexto("models", "--json", env={"DEXTO_API_KEY": "dxk_1"})
    assert r.returncode == 0, r.stderr
    cat = json.loads(r.stdout)
    assert set(cat["auth"]) == {"hasDextoKey", "preferDextoCredits"}
    assert "dexto" not in cat["providers"]
    anth = cat["providers"]["anthropic"]
    assert {
        "name",
        "canRouteViaDexto",
        "hasDirectKey",
        "hasEffectiveCredentials",
        "credentialSources",
        "effectiveRoute",
        "models",
    } <= set(anth)
    m = anth["models"][0]
    assert {
        "id",
        "displayName",
        "marketplaceId",
        "contextWindow",
        "maxOutputTokens",
        "featured",
        "custom",
        "pricing",
    } <= set(m)
    assert "dxk_1" not in r.stdout


def test_models_filters_and_table(dexto: Run) -> None:
    r = dexto("models", "--provider", "cohere", "--json")
    assert list(json.loads(r.stdout)["providers"]) == ["cohere"]
    r = dexto("models", "--search", "haiku", "--json")
    ids = [m["id"] for p in json.loads(r.stdout)["providers"].values() for m in p["models"]]
    assert ids and all("haiku" in i for i in ids)
    r = dexto("models", "--provider", "anthropic")
    assert "not available" in r.stdout and "dexto login" in r.stdout
    r = dexto("models", "--provider", "dexto", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "PROVIDER_NOT_ALLOWED"


def test_models_refresh_unreachable_fails_but_plain_models_uses_the_bundled_list(
    dexto: Run,
) -> None:
    r = dexto("models", "--refresh", "--provider", "openrouter", "--json")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "MARKETPLACE_UNAVAILABLE" and "127.0.0.1:9" in err["message"]
    assert "bundled" in err["fix"]
    r = dexto("models", "--refresh", "--provider", "openrouter")
    assert r.returncode == 2 and "could not refresh" in r.stderr and "Traceback" not in r.stderr
    r = dexto("models", "--provider", "openrouter", "--json")
    assert r.returncode == 0
    mk = json.loads(r.stdout)["marketplace"]
    assert (mk["state"], mk["source"]) == ("bundled", "bundled") and mk["count"] > 300
    assert mk["snapshotDate"]


def test_failed_refresh_is_not_retried_until_forced(
    dexto: Run, models_server: ModelsServer, isolated_env: Path
) -> None:
    models_server.status, models_server.body = 503, b"down"
    env = {"DEXTO_OPENROUTER_MODELS_URL": models_server.url}
    assert dexto("models", "--json", env=env).returncode == 0
    assert models_server.hits == 1
    r = dexto("models", "--json", env=env)
    assert r.returncode == 0 and models_server.hits == 1  # backed off
    assert json.loads(r.stdout)["marketplace"]["source"] == "bundled"
    r = dexto("models", "--refresh", "--json", env=env)
    assert r.returncode == 2 and "HTTP 503" in json.loads(r.stdout)["error"]["message"]
    assert models_server.hits == 2


def test_models_refreshes_a_missing_cache(
    dexto: Run, models_server: ModelsServer, isolated_env: Path
) -> None:
    r = dexto(
        "models",
        "--provider",
        "openrouter",
        "--json",
        env={"DEXTO_OPENROUTER_MODELS_URL": models_server.url, "DEXTO_API_KEY": "d"},
    )
    cat = json.loads(r.stdout)
    mk = cat["marketplace"]
    assert (mk["state"], mk["source"], mk["count"]) == ("fresh", "live", len(SAMPLE_ROWS))
    assert models_server.hits == 1 and (isolated_env / "cache" / "openrouter-models.json").exists()
    r = dexto(
        "models", "--offline", "--json", env={"DEXTO_OPENROUTER_MODELS_URL": models_server.url}
    )
    assert r.returncode == 0 and models_server.hits == 1
    assert json.loads(r.stdout)["marketplace"]["source"] == "cache"
