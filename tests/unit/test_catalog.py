"""The merged catalog, SPEC §8.4: one answer, annotated by the decision's own state."""

from __future__ import annotations

import json
from pathlib import Path

from dexto.config.paths import DextoPaths
from dexto.llm.catalog import build_catalog
from dexto.llm.context import build_context
from dexto.llm.marketplace import MarketplaceCatalog, parse_models
from tests._samples import SAMPLE_ROWS

CATALOG = MarketplaceCatalog(parse_models(SAMPLE_ROWS), "fresh")


def catalog(home: Path, env: dict[str, str], **kw: object) -> dict:
    ctx, state = build_context(env=env, paths=DextoPaths(home), marketplace=CATALOG)
    return build_catalog(ctx, state.preferences, state.custom_models, **kw)  # type: ignore[arg-type]


def test_dexto_key_alone_serves_openrouter_without_openrouter_key(tmp_path: Path) -> None:
    cat = catalog(tmp_path, {"DEXTO_API_KEY": "dxk"})
    assert "dexto" not in cat["providers"]
    orr = cat["providers"]["openrouter"]
    assert orr["hasEffectiveCredentials"] and orr["effectiveRoute"] == "dexto"
    assert orr["hasDirectKey"] is False and orr["name"] == "Dexto Marketplace"
    assert any(m["id"] == "z-ai/glm-4.5-air:free" for m in orr["models"])
    assert cat["auth"] == {"hasDextoKey": True, "preferDextoCredits": True}


def test_no_credentials_keeps_entries_flagged_with_fix(tmp_path: Path) -> None:
    cat = catalog(tmp_path, {})
    anth = cat["providers"]["anthropic"]
    assert anth["hasEffectiveCredentials"] is False and anth["effectiveRoute"] == "none"
    assert "dexto login" in anth["fix"] and "ANTHROPIC_API_KEY" in anth["fix"]
    assert anth["models"], "flagged, not hidden"
    assert cat["providers"]["openrouter"]["name"] == "OpenRouter"
    assert cat["providers"]["ollama"]["hasEffectiveCredentials"] is True


def test_featured_first_filters_and_search(tmp_path: Path) -> None:
    (tmp_path / "preferences.yml").write_text(
        "disabledProviders: [cohere]\nallowedModels: ['anthropic/*', 'openai/gpt-5*']\n"
    )
    cat = catalog(tmp_path, {"DEXTO_API_KEY": "d"})
    assert "cohere" not in cat["providers"]
    anth = cat["providers"]["anthropic"]["models"]
    flags = [m["featured"] for m in anth]
    assert flags == sorted(flags, reverse=True)
    assert all(m["id"].startswith("gpt-5") for m in cat["providers"]["openai"]["models"])
    found = catalog(tmp_path, {"DEXTO_API_KEY": "d"}, search="sonnet 4.5")
    ids = [m["id"] for p in found["providers"].values() for m in p["models"]]
    assert "claude-sonnet-4-5-20250929" in ids


def test_custom_models_are_merged_and_validated(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "custom-models.json").write_text(
        json.dumps(
            {
                "version": 1,
                "models": [
                    {
                        "name": "z-ai/glm-4.5-air:free",
                        "provider": "openrouter",
                        "displayName": "GLM free",
                    },
                    {"name": "nobody/x", "provider": "openrouter"},
                    {
                        "name": "llama3",
                        "provider": "openai-compatible",
                        "baseURL": "http://127.0.0.1:1/v1",
                    },
                ],
            }
        )
    )
    cat = catalog(tmp_path, {"DEXTO_API_KEY": "d"})
    orr = {m["displayName"]: m for m in cat["providers"]["openrouter"]["models"] if m["custom"]}
    assert orr["GLM free"]["validation"] == "known"
    assert orr["nobody/x"]["validation"] == "unknown"
    oc = cat["providers"]["openai-compatible"]["models"]
    assert oc[0]["baseURL"] == "http://127.0.0.1:1/v1" and oc[0]["custom"]
