"""Provider IDs match ignoring case at every input that names one; model IDs keep their case.

One table of (typed provider, canonical ID, model) drives each surface that ends in ``decide()``:
``parse_selection``, a ``Selection`` built directly, an agent file, and the agent's ``apiKey``
reference; the decision must be the one for the canonical spelling.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dexto.config.agent import load_agent_file
from dexto.config.custom_models import parse_custom_models
from dexto.config.paths import DextoPaths
from dexto.config.preferences import load_preferences, parse_pref_value
from dexto.errors import ProviderNotAllowedError, UnknownProviderError
from dexto.llm.catalog import build_catalog
from dexto.llm.context import build_context
from dexto.llm.marketplace import MarketplaceCatalog, parse_models
from dexto.llm.providers import canonical_provider_id, get_provider
from dexto.llm.routing import RouteDecision, RoutingContext, decide
from dexto.llm.selection import Selection, parse_selection
from tests._samples import SAMPLE_ROWS

CATALOG = MarketplaceCatalog(parse_models(SAMPLE_ROWS), "fresh")
ENV = {
    "DEXTO_API_KEY": "dxk_case",
    "OPENAI_API_KEY": "sk-oai",
    "OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:8000/v1",
}

# (as typed, canonical, model ID — sent upstream exactly as typed)
TABLE = [
    ("OpenAI", "openai", "gpt-4o"),
    ("ANTHROPIC", "anthropic", "claude-sonnet-4-5-20250929"),
    ("Google", "google", "gemini-2.0-flash"),
    ("xAI", "xai", "grok-4"),
    ("OpenRouter", "openrouter", "Z-AI/GLM-4.5-Air:free"),
    ("OpenAI-Compatible", "openai-compatible", "My-Model"),
    ("openai", "openai", "gpt-4o"),
]


def _ctx(
    tmp: Path, env: dict[str, str] | None = None, agent_path: Path | None = None
) -> RoutingContext:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    agent = load_agent_file(agent_path) if agent_path is not None else None
    ctx, _ = build_context(
        env=ENV if env is None else env, agent=agent, paths=DextoPaths(home), marketplace=CATALOG
    )
    return ctx


def _decision(sel: Selection, ctx: RoutingContext) -> RouteDecision | str:
    try:
        return decide(sel, ctx)
    except Exception as exc:  # the same error for both spellings is also agreement
        return f"{type(exc).__name__}: {exc}"


def _agent(tmp: Path, provider: str, model: str, extra: str = "") -> Path:
    path = tmp / f"agent-{provider}.yml"
    path.write_text(f"llm:\n  provider: {provider}\n  model: '{model}'\n{extra}")
    return path


@pytest.mark.parametrize("typed,canonical,model", TABLE)
def test_every_selection_surface_decides_as_for_the_canonical_id(
    tmp_path: Path, typed: str, canonical: str, model: str
) -> None:
    ctx = _ctx(tmp_path)
    want = _decision(Selection(canonical, model), ctx)
    assert not isinstance(want, str) or canonical == "openai-compatible", want
    parsed = parse_selection(f"{typed}/{model}")
    built = Selection(typed, model)
    agent = load_agent_file(_agent(tmp_path, typed, model))
    surfaces = {"parse_selection": parsed, "Selection": built, "agent file": agent.llm.selection}
    for name, sel in surfaces.items():
        assert (sel.provider, sel.model) == (canonical, model), name
        assert str(sel) == f"{canonical}/{model}", name
        assert _decision(sel, ctx) == want, name
    assert agent.llm.provider == canonical
    assert get_provider(typed).id == canonical


@pytest.mark.parametrize("typed", ["Anthropic", "ANTHROPIC", "anthropic"])
def test_an_agent_api_key_reference_applies_whatever_the_provider_case(
    tmp_path: Path, typed: str
) -> None:
    path = _agent(tmp_path, typed, "claude-sonnet-4-5-20250929", "  apiKey: $MY_CLAUDE_KEY\n")
    ctx = _ctx(tmp_path, {"MY_CLAUDE_KEY": "sk-ant-own"}, path)
    d = decide(load_agent_file(path).llm.selection, ctx)
    assert (d.route, d.credential_source) == ("direct", "env:MY_CLAUDE_KEY")


def test_model_ids_keep_their_case() -> None:
    sel = parse_selection("OpenRouter/Z-AI/GLM-4.5-Air:free")
    assert (sel.provider, sel.model) == ("openrouter", "Z-AI/GLM-4.5-Air:free")


@pytest.mark.parametrize("typed", ["dexto/x", "Dexto/x", "DEXTO/x"])
def test_dexto_is_refused_in_any_case(typed: str) -> None:
    with pytest.raises(ProviderNotAllowedError):
        parse_selection(typed)


@pytest.mark.parametrize("typed", ["OpenAl/gpt-4o", "open ai/gpt-4o", "Op\u212aenai/gpt-4o"])
def test_unknown_providers_still_fail_with_the_closest_id(typed: str) -> None:
    with pytest.raises(UnknownProviderError) as info:
        parse_selection(typed)
    assert "use one of: anthropic, openai" in info.value.fix


def test_only_ascii_case_is_folded() -> None:
    assert canonical_provider_id("OPENAI") == "openai"
    assert canonical_provider_id("bedroc\u212a") == "bedroc\u212a"  # Kelvin sign stays unknown
    with pytest.raises(UnknownProviderError):
        get_provider("bedroc\u212a")


def test_provider_preferences_are_canonical(tmp_path: Path) -> None:
    assert parse_pref_value("disabledProviders", "OpenAI, Groq") == ["openai", "groq"]
    prefs_file = tmp_path / "preferences.yml"
    prefs_file.write_text("disabledProviders: [OpenAI]\nenabledProviders: [OpenAI, Anthropic]\n")
    prefs = load_preferences(prefs_file)
    assert prefs.enabledProviders == ["openai", "anthropic"]
    catalog = build_catalog(_ctx(tmp_path), prefs, [])
    assert list(catalog["providers"]) == ["anthropic"]


def test_custom_model_providers_are_canonical() -> None:
    entries = [{"provider": "OpenRouter", "name": "Vendor/My-Model"}]
    (model,) = parse_custom_models(entries, file="agent.yml", field_prefix="llm.customModels")
    assert (model.provider, model.name) == ("openrouter", "Vendor/My-Model")
