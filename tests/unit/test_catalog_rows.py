"""One truth per row: every catalog row's route equals ``decide()`` for that row, under a matrix
of credentials, policies and custom models; custom rows merged with listings; local GGUF rows
are not runnable; marketplace rows offer the native selection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from dexto.config.paths import DextoPaths
from dexto.errors import ConfigError, DextoError, NoCredentialsError
from dexto.llm.catalog import build_catalog
from dexto.llm.context import build_context
from dexto.llm.marketplace import bundled_catalog
from dexto.llm.routing import RoutingContext, decide
from dexto.llm.selection import Selection

CUSTOM = [
    {"name": "my-model", "provider": "glama", "apiKeyEnv": "MY_GLAMA_KEY"},
    {"name": "other-model", "provider": "glama"},
    {"name": "anthropic/claude-sonnet-4.5", "provider": "openrouter", "displayName": "Mine"},
    {"name": "nobody/x", "provider": "openrouter", "apiKeyEnv": "MY_OR_KEY"},
    {"name": "llama3", "provider": "openai-compatible", "baseURL": "http://127.0.0.1:1/v1"},
    {"name": "tiny", "provider": "local", "filePath": "/models/tiny.gguf"},
    {"name": "Qwen3", "provider": "ollama"},
    {
        "name": "stored-key-model",
        "provider": "litellm",
        "baseURL": "http://127.0.0.1:2",
        "apiKeyRef": "custom-litellm",
    },
]
KEYS = {
    "dexto": {"DEXTO_API_KEY": "dxk"},
    "anthropic": {"ANTHROPIC_API_KEY": "sk-ant"},
    "openrouter": {"OPENROUTER_API_KEY": "sk-or"},
    "custom-env": {"MY_GLAMA_KEY": "g", "MY_OR_KEY": "o"},
}
MATRIX = [combo for n in range(len(KEYS) + 1) for combo in itertools.combinations(KEYS, n)]


def _home(tmp: Path, *, store: bool) -> DextoPaths:
    (tmp / "models").mkdir(parents=True, exist_ok=True)
    (tmp / "models" / "custom-models.json").write_text(json.dumps({"version": 1, "models": CUSTOM}))
    if store:
        (tmp / "auth.json").write_text(json.dumps({"custom-litellm": {"type": "api", "key": "ll"}}))
        (tmp / "auth.json").chmod(0o600)
    return DextoPaths(tmp)


def _decided(pid: str, model: str, ctx: RoutingContext) -> str:
    try:
        return decide(Selection(pid, model), ctx).route
    except (NoCredentialsError, ConfigError):
        return "none"


@pytest.mark.parametrize("prefer", ["dexto", "direct"])
@pytest.mark.parametrize("combo", MATRIX, ids=lambda c: "+".join(c) or "nothing")
def test_every_row_equals_decide(tmp_path: Path, combo: tuple[str, ...], prefer: str) -> None:
    env = {k: v for name in combo for k, v in KEYS[name].items()}
    paths = _home(tmp_path, store="custom-env" in combo)
    ctx, state = build_context(env=env, paths=paths, prefer=prefer, marketplace=bundled_catalog())
    cat = build_catalog(ctx, state.preferences, state.custom_models)
    rows = 0
    for pid, prov in cat["providers"].items():
        for m in prov["models"]:
            want = _decided(pid, m["id"], ctx)
            assert (m["effectiveRoute"], m["hasEffectiveCredentials"]) == (want, want != "none"), (
                f"{pid}/{m['id']}"
            )
            rows += 1
    assert rows > 400


def _catalog(tmp_path: Path, env: dict[str, str], **kw: Any) -> dict[str, Any]:
    ctx, state = build_context(
        env=env, paths=_home(tmp_path, store=False), marketplace=bundled_catalog()
    )
    return build_catalog(ctx, state.preferences, state.custom_models, **kw)


def _row(cat: dict[str, Any], pid: str, mid: str) -> dict[str, Any]:
    rows = [m for m in cat["providers"][pid]["models"] if m["id"] == mid]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_custom_model_with_its_own_key_env_runs_although_the_provider_has_none(
    tmp_path: Path,
) -> None:
    cat = _catalog(tmp_path, {"MY_GLAMA_KEY": "g"})
    glama = cat["providers"]["glama"]
    assert glama["effectiveRoute"] == "none"  # no GLAMA_API_KEY
    assert _row(cat, "glama", "my-model")["effectiveRoute"] == "direct"
    assert _row(cat, "glama", "other-model")["effectiveRoute"] == "none"
    ctx, _ = build_context(env={"MY_GLAMA_KEY": "g"}, paths=DextoPaths(tmp_path))
    assert decide(Selection("glama", "MY-MODEL"), ctx).credential_source == "env:MY_GLAMA_KEY"


def test_a_saved_marketplace_model_is_listed_once(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, {"DEXTO_API_KEY": "d"})
    row = _row(cat, "openrouter", "anthropic/claude-sonnet-4.5")
    assert row["custom"] and row["displayName"] == "Mine" and row["validation"] == "known"
    assert row["pricing"] == {"inputPerM": 3.0, "outputPerM": 15.0}
    assert (
        row["contextWindow"] == bundled_catalog().get("anthropic/claude-sonnet-4.5").context_length
    )  # type: ignore[union-attr]


def test_local_gguf_models_are_listed_as_not_runnable(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, {"DEXTO_API_KEY": "d"})
    local = cat["providers"]["local"]
    assert local["runnable"] is False and local["effectiveRoute"] == "none"
    assert "GGUF" in local["fix"] and "ollama" in local["fix"].lower()
    row = _row(cat, "local", "tiny")
    assert row["runnable"] is False and row["effectiveRoute"] == "none"
    ctx, _ = build_context(env={}, paths=DextoPaths(tmp_path))
    with pytest.raises(DextoError) as e:
        decide(Selection("local", "tiny"), ctx)
    assert "not runnable" in e.value.message and "llama-server" in e.value.fix


def test_marketplace_rows_offer_the_native_selection(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, {"DEXTO_API_KEY": "d", "ANTHROPIC_API_KEY": "a"})
    orr = cat["providers"]["openrouter"]
    assert orr["name"] == "Dexto Marketplace"
    sonnet = _row(cat, "openrouter", "anthropic/claude-sonnet-4.6")
    assert sonnet["featured"] and sonnet["native"] == {
        "provider": "anthropic",
        "model": "claude-sonnet-4-6",
        "verified": True,
        "hasDirectKey": True,
        "effectiveRoute": "dexto",
    }
    derived = _row(cat, "openrouter", "anthropic/claude-3.7-sonnet")["native"]
    assert (derived["model"], derived["verified"]) == ("claude-3-7-sonnet-20250219", False)
    assert "native" not in _row(cat, "openrouter", "z-ai/glm-4.5-air:free")
    flags = [m["featured"] for m in orr["models"]]
    assert flags == sorted(flags, reverse=True) and flags[0]
    assert cat["marketplace"]["source"] == "bundled" and cat["marketplace"]["snapshotDate"]
