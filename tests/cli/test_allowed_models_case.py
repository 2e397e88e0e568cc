"""``allowedModels``: the provider part of a pattern matches ignoring case (as provider IDs do
everywhere), the model part keeps its case — the same answer from ``model_allowed``, the catalog
built in-process, ``dexto models --json``, the server's ``GET /llm/catalog`` (what the web
picker lists) and the selection ``decide()`` (``dexto route``) resolves each row to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dexto.config.paths import DextoPaths
from dexto.config.preferences import load_preferences, model_allowed
from dexto.llm.catalog import build_catalog
from dexto.llm.context import build_context
from dexto.llm.routing import decide
from dexto.llm.selection import Selection
from tests.cli.conftest import Run
from tests.server._serve import start

ENV = {"DEXTO_API_KEY": "dxk_allowed_0123456789", "GROQ_API_KEY": "gsk-allowed"}
PATTERNS = [
    "OpenAI/gpt-5.4*",
    "ANTHROPIC/claude-sonnet-4-5-*",
    "Google/Gemini-2.0-*",
    "*/grok-4-0709",
    "Groq/openai/gpt-oss-*",
    "openai/GPT-5.5",
]
TABLE = [  # (provider as typed, model, listed)
    ("OpenAI", "gpt-5.4", True),
    ("openai", "gpt-5.4-mini", True),
    ("OPENAI", "gpt-5.5", False),  # "openai/GPT-5.5": the model part keeps its case
    ("Anthropic", "claude-sonnet-4-5-20250929", True),
    ("anthropic", "claude-sonnet-4-6", False),
    ("Google", "gemini-2.0-flash", False),  # "Gemini-2.0-*" is not "gemini-2.0-…"
    ("xAI", "grok-4-0709", True),
    ("Groq", "openai/gpt-oss-120b", True),  # the model's own "/" is part of the model
    ("groq", "llama-3.3-70b-versatile", False),
]


def _listed(catalog: dict[str, Any]) -> set[tuple[str, str]]:
    return {(pid, m["id"]) for pid, p in catalog["providers"].items() for m in p["models"]}


def _in_process(home: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(rows listed with the preferences, rows listed without them)."""
    ctx, state = build_context(env=ENV, paths=DextoPaths(home))
    full = build_catalog(ctx, state.preferences.model_copy(update={"allowedModels": None}), [])
    return _listed(build_catalog(ctx, state.preferences, state.custom_models)), _listed(full)


def test_every_surface_lists_what_model_allowed_says(
    dexto: Run, isolated_env: Path, tmp_path: Path
) -> None:
    r = dexto("prefs", "set", "allowedModels", ",".join(PATTERNS), env=ENV)
    assert r.returncode == 0, r.stderr
    assert load_preferences(isolated_env / "preferences.yml").allowedModels == PATTERNS
    listed, every = _in_process(isolated_env)
    models = dexto("models", "--offline", "--json", env=ENV)
    assert models.returncode == 0, models.stderr
    cli = _listed(json.loads(models.stdout))
    agent = tmp_path / "agent.yml"
    agent.write_text("llm:\n  provider: openai\n  model: gpt-5.4\n")
    served = start(isolated_env, agent, ENV)
    try:
        resp = served.get("/llm/catalog")
        assert resp.status_code == 200, resp.text
        server = _listed(resp.json())
    finally:
        served.stop()
    assert cli == server == listed
    assert listed == {(p, m) for p, m in every if model_allowed(PATTERNS, p, m)}
    ctx, _ = build_context(env=ENV, paths=DextoPaths(isolated_env))
    for typed, model, want in TABLE:
        d = decide(Selection(typed, model), ctx)
        route = dexto("route", f"{typed}/{model}", "--json", env=ENV)
        assert route.returncode == 0, route.stderr
        got = json.loads(route.stdout)
        key = (d.provider, d.model)
        assert (got["provider"], got["model"]) == key
        assert key in every, key  # the row exists: only the preference hides it
        assert model_allowed(PATTERNS, typed, model) is want, key
        assert model_allowed(PATTERNS, d.provider, d.model) is want, key
        assert (key in listed, key in cli, key in server) == (want, want, want), key


@pytest.mark.parametrize(
    "pattern,provider,model,want",
    [
        ("OpenRouter/Z-AI/*", "openrouter", "Z-AI/GLM-4.5-Air:free", True),
        ("OpenRouter/Z-AI/*", "OPENROUTER", "z-ai/glm-4.5-air:free", False),
        ("Open*/gpt-5*", "openai-compatible", "gpt-5", True),
        ("[A-Z]*/gpt-5", "openai", "gpt-5", True),
        ("*", "Anthropic", "claude-sonnet-4-6", True),
        ("*/GPT-5", "openai", "gpt-5", False),
        ("OPENAI*", "openai", "gpt-5", False),  # no "/": matched as written
        ("open\u212aai/gpt-5", "openkai", "gpt-5", False),  # only ASCII case is folded
    ],
)
def test_model_allowed_pattern_rules(pattern: str, provider: str, model: str, want: bool) -> None:
    assert model_allowed([pattern], provider, model) is want
    assert model_allowed(None, provider, model) is True
    assert model_allowed([], provider, model) is False
