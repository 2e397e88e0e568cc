"""Model identity through the real console script: first run offline, list sources, the reverse
mapping, the registry audit, and the fumbles of issue 13 that live in routing and the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import write_cache
from tests._samples import SAMPLE_ROWS, row
from tests.cli.conftest import Run

DEXTO = {"DEXTO_API_KEY": "dxk_test_1"}


def test_first_run_offline_maps_through_the_bundled_snapshot(
    dexto: Run, isolated_env: Path
) -> None:
    r = dexto("route", "anthropic/claude-3-7-sonnet-20250219", "--json", env=DEXTO)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["effectiveModel"], out["mappingVerified"], out["marketplaceSource"]) == (
        "anthropic/claude-3.7-sonnet",
        True,
        "bundled",
    )
    assert not (isolated_env / "cache" / "openrouter-models.json").exists()
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=DEXTO)
    assert json.loads(r.stdout)["marketplaceSource"] is None  # curated: no list was read


def test_a_stale_cache_wins_over_the_bundled_snapshot(dexto: Run, isolated_env: Path) -> None:
    paths = DextoPaths(isolated_env)
    write_cache(paths, SAMPLE_ROWS)
    raw = json.loads(paths.marketplace_cache.read_text())
    raw["fetchedAt"] = 0
    paths.marketplace_cache.write_text(json.dumps(raw))
    r = dexto("route", "anthropic/claude-opus-9-20300101", "--json", env=DEXTO)
    out = json.loads(r.stdout)
    assert (out["effectiveModel"], out["marketplaceSource"]) == ("anthropic/claude-opus-9", "cache")
    r = dexto("models", "--offline", "--json")
    assert json.loads(r.stdout)["marketplace"]["source"] == "cache"


def test_no_credentials_for_a_marketplace_id_names_the_native_selection(dexto: Run) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-0001"}
    r = dexto("route", "openrouter/anthropic/claude-sonnet-4.5", "--json", env=env)
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out["error"]["code"] == "NO_CREDENTIALS"
    assert "anthropic/claude-sonnet-4-5-20250929" in out["error"]["fix"]
    assert out["alternatives"] == [
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5-20250929",
            "route": "direct",
            "credentialSource": "env:ANTHROPIC_API_KEY",
        }
    ]
    r = dexto("route", "openrouter/anthropic/claude-sonnet-4.5", env=env)
    assert "anthropic/claude-sonnet-4-5-20250929" in r.stderr and "Traceback" not in r.stderr
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=env)
    assert json.loads(r.stdout)["route"] == "direct"  # the named fix works


def test_a_payable_marketplace_selection_still_lists_the_own_key_alternative(dexto: Run) -> None:
    env = {**DEXTO, "ANTHROPIC_API_KEY": "sk-ant-test-0001"}
    r = dexto("route", "openrouter/anthropic/claude-3.7-sonnet", "--json", env=env)
    out = json.loads(r.stdout)
    assert out["route"] == "dexto"
    assert out["alternatives"] == [
        {
            "provider": "anthropic",
            "model": "claude-3-7-sonnet-20250219",
            "route": "direct",
            "credentialSource": "env:ANTHROPIC_API_KEY",
        }
    ]
    r = dexto("route", "openrouter/anthropic/claude-3.7-sonnet", env=env)
    assert "own key    anthropic/claude-3-7-sonnet-20250219" in r.stdout
    r = dexto("route", "openrouter/z-ai/glm-4.5-air:free", "--json", env=env)
    assert json.loads(r.stdout)["alternatives"] == []


@pytest.mark.parametrize(
    "args,suggestion",
    [
        (["route", "antropic/claude"], "'anthropic'"),
        (["route", "OpenAl/gpt-5"], "'openai'"),  # a typo; case alone is no error
        (["models", "--provider", "opnrouter"], "'openrouter'"),
    ],
)
def test_unknown_provider_gets_did_you_mean(dexto: Run, args: list[str], suggestion: str) -> None:
    r = dexto(*args, "--json")
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 2 and err["code"] == "UNKNOWN_PROVIDER"
    assert err["fix"].startswith(f"did you mean {suggestion}?")


def test_models_audit_reports_drift(dexto: Run, isolated_env: Path) -> None:
    write_cache(
        DextoPaths(isolated_env),
        [
            row(
                "anthropic/claude-sonnet-4.5", prompt="0.000004", completion="0.000015", ctx=1000000
            ),
            row("anthropic/claude-brand-new", "anthropic/claude-brand-new-20310101"),
            row("anthropic/claude-brand-new:thinking", "anthropic/claude-brand-new-20310101"),
            row("z-ai/glm-9"),
        ],
    )
    r = dexto("models", "audit", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["marketplace"]["source"] == "cache"
    changed = {c["model"]: c["changes"] for c in rep["changed"]}
    assert changed == {
        "claude-sonnet-4-5-20250929": {"inputPerM": {"registry": 3.0, "marketplace": 4.0}}
    }
    retired = {r["marketplaceId"] for r in rep["retired"]}
    assert "openai/gpt-5" in retired and "anthropic/claude-sonnet-4.5" not in retired
    assert [u["marketplaceId"] for u in rep["uncurated"]] == ["anthropic/claude-brand-new"]
    text = dexto("models", "audit")
    assert text.returncode == 0 and "inputPerM 3.0 → 4.0" in text.stdout


def test_the_curated_registry_has_no_drift_against_the_bundled_snapshot(dexto: Run) -> None:
    rep = json.loads(dexto("models", "audit", "--json").stdout)
    assert rep["marketplace"]["source"] == "bundled"
    assert rep["retired"] == [] and rep["changed"] == []


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh"])
def test_reasoning_effort_values(dexto: Run, effort: str) -> None:
    r = dexto(
        "models",
        "add",
        "--provider",
        "ollama",
        "--name",
        f"m-{effort}",
        "--reasoning-effort",
        effort,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["reasoningEffort"] == effort


def test_local_gguf_models_are_saved_but_never_presented_as_runnable(
    dexto: Run, tmp_path: Path
) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    r = dexto(
        "models", "add", "--provider", "local", "--name", "tiny", "--file-path", str(gguf), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["route"] == "none"
    r = dexto("models", "add", "--provider", "local", "--name", "tiny2", "--file-path", str(gguf))
    assert "cannot run GGUF" in r.stdout and "--api-key" not in r.stdout
    r = dexto("route", "local/tiny", "--json")
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 2 and "not runnable" in err["message"] and "GGUF" in err["fix"]
    r = dexto("route", "local/tiny")
    assert "direct (your key)" not in r.stdout and "llama-server" in r.stderr
    r = dexto("models", "--provider", "local")
    assert "not runnable" in r.stdout and "GGUF" in r.stdout


def test_ids_are_looked_up_ignoring_case_and_sent_as_curated(dexto: Run) -> None:
    r = dexto("route", "openai/O4-MINI", "--json", env={"OPENAI_API_KEY": "sk-test-000001"})
    out = json.loads(r.stdout)
    assert (out["model"], out["effectiveModel"], out["route"]) == ("O4-MINI", "o4-mini", "direct")
    r = dexto("route", "openai/O4-MINI", "--json", env=DEXTO)
    out = json.loads(r.stdout)
    assert (out["effectiveModel"], out["mappingVerified"]) == ("openai/o4-mini", True)
