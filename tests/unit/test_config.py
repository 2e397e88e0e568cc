"""Agent files, preferences and custom models: typed errors that name file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dexto.config.agent import load_agent_file
from dexto.config.custom_models import load_custom_models, merge_custom_models, parse_custom_models
from dexto.config.preferences import load_preferences
from dexto.errors import (
    ConfigError,
    InvalidModelIdError,
    ProviderNotAllowedError,
    UnknownProviderError,
)
from dexto.llm.policy import resolve_policy

GOOD = """# my agent
systemPrompt: hi
llm:
  provider: anthropic
  model: claude-sonnet-4-5-20250929
  apiKey: $MY_ANTHROPIC_KEY
  routing:
    prefer: direct
"""


def write(tmp: Path, text: str, name: str = "agent.yml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_good_agent_file(tmp_path: Path) -> None:
    cfg = load_agent_file(write(tmp_path, GOOD))
    assert (cfg.llm.provider, cfg.llm.model, cfg.llm.routing.prefer) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "direct",
    )
    assert cfg.llm.routing.fallbackOnInsufficientCredits is True


@pytest.mark.parametrize(
    "text,exc,field,line",
    [
        (
            "llm:\n  provider: dexto\n  model: anthropic/claude-sonnet-4.5\n",
            ProviderNotAllowedError,
            "llm.provider",
            2,
        ),
        ("llm:\n  provider: antropic\n  model: x\n", UnknownProviderError, "llm.provider", 2),
        (
            "llm:\n  provider: anthropic\n  model: 'has space'\n",
            InvalidModelIdError,
            "llm.model",
            None,
        ),
        (
            "llm:\n  provider: anthropic\n  model: m\n  apiKey: sk-ant-raw-secret\n",
            ConfigError,
            "llm.apiKey",
            4,
        ),
        (
            "llm:\n  provider: anthropic\n  model: m\n  routing:\n    prefer: cheapest\n",
            ConfigError,
            "llm.routing.prefer",
            5,
        ),
        ("llm:\n  provider: anthropic\n  model: m\n  colour: blue\n", ConfigError, "llm.colour", 4),
        ("llm:\n  provider: anthropic\n  model: [1, 2]\n", ConfigError, "llm.model", 3),
        (
            "llm:\n  provider: anthropic\n  model: m\n  maxOutputTokens: -5\n",
            ConfigError,
            "llm.maxOutputTokens",
            4,
        ),
        ("llm: [unclosed\n", ConfigError, None, None),
        ("systemPrompt: hi\n", ConfigError, "llm", None),
        (
            "llm:\n  provider: openai-compatible\n  model: m\n  customModels:\n"
            "    - {name: m, provider: openai-compatible}\n",
            ConfigError,
            "llm.customModels[0]",
            None,
        ),
        (
            "llm:\n  provider: anthropic\n  model: m\n  customModels:\n"
            "    - {name: m, provider: dexto}\n",
            ProviderNotAllowedError,
            "llm.customModels[0].provider",
            None,
        ),
    ],
)
def test_bad_agent_files(
    tmp_path: Path, text: str, exc: type[ConfigError], field: str | None, line: int | None
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(exc) as e:
        load_agent_file(path)
    err = e.value
    assert str(path) in err.message and err.fix
    if field is not None:
        assert err.field == field
    if line is not None:
        assert err.line == line
    assert "sk-ant-raw-secret" not in str(err)
    assert path.read_text() == text


def test_dexto_provider_error_states_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  provider: dexto\n  model: anthropic/claude-sonnet-4.5\n")
    with pytest.raises(ProviderNotAllowedError) as e:
        load_agent_file(path)
    assert "choose the real provider" in e.value.fix and "dexto login" in e.value.fix


@pytest.mark.parametrize(
    "text,field",
    [
        ("preferDextoCredits: yes please\n", "preferDextoCredits"),
        ("preferDextoCredits: 1\n", "preferDextoCredits"),
        ("lowCreditsWarningUsd: -1\n", "lowCreditsWarningUsd"),
        ("unknownKey: true\n", "unknownKey"),
        ("- a\n- b\n", None),
    ],
)
def test_bad_preferences(tmp_path: Path, text: str, field: str | None) -> None:
    path = write(tmp_path, text, "preferences.yml")
    with pytest.raises(ConfigError) as e:
        load_preferences(path)
    assert e.value.field == field and str(path) in e.value.message
    assert path.read_text() == text


def test_preferences_defaults_and_values(tmp_path: Path) -> None:
    assert load_preferences(tmp_path / "missing.yml").preferDextoCredits is None
    prefs = load_preferences(write(tmp_path, "# c\npreferDextoCredits: false\n", "p.yml"))
    assert prefs.preferDextoCredits is False and prefs.lowCreditsWarningUsd == 0.5


@pytest.mark.parametrize(
    "agent,prefs,override,want,source",
    [
        (None, None, None, "dexto", "default"),
        ("direct", None, None, "direct", "agent"),
        ("direct", True, None, "dexto", "preferences"),
        ("dexto", False, None, "direct", "preferences"),
        ("dexto", False, "dexto", "dexto", "override"),
        (None, True, "direct", "direct", "override"),
    ],
)
def test_policy_precedence(
    agent: str | None, prefs: bool | None, override: str | None, want: str, source: str
) -> None:
    pol = resolve_policy(agent_prefer=agent, prefer_dexto_credits=prefs, override=override)
    assert (pol.prefer, pol.source) == (want, source)


def test_policy_override_must_be_valid() -> None:
    with pytest.raises(ConfigError):
        resolve_policy(override="cheap")


@pytest.mark.parametrize(
    "text,field",
    [
        ("{bad", None),
        ('{"models": {}}', "models"),
        ('{"version": 2, "models": []}', "version"),
        ('{"version": 1, "models": [{"name": "x", "provider": "litellm"}]}', "models[0]"),
        (
            '{"version": 1, "models": [{"name": "x", "provider": "local", "filePath": "a.bin"}]}',
            "models[0]",
        ),
        (
            '{"version": 1, "models": [{"name": "x", "provider": "openrouter", "apiKey": "sk-1"}]}',
            "models[0]",
        ),
        ('{"version": 1, "models": [{"name": "x", "provider": "dexto"}]}', "models[0].provider"),
        (
            '{"version": 1, "models": [{"name": "x", "provider": "anthropic"}]}',
            "models[0].provider",
        ),
    ],
)
def test_bad_custom_models_file(tmp_path: Path, text: str, field: str | None) -> None:
    path = write(tmp_path, text, "custom-models.json")
    with pytest.raises(ConfigError) as e:
        load_custom_models(path)
    assert e.value.field == field and "sk-1" not in str(e.value)
    assert path.read_text() == text


def test_agent_custom_models_overlay_local_by_name() -> None:
    local = parse_custom_models(
        [
            {"name": "a/b", "provider": "openrouter", "displayName": "L"},
            {"name": "c", "provider": "ollama"},
        ],
        file="f",
        field_prefix="m",
    )
    agent = parse_custom_models(
        [{"name": "a/b", "provider": "openrouter", "displayName": "A"}], file="g", field_prefix="m"
    )
    merged = {m.name: m for m in merge_custom_models(local, agent)}
    assert merged["a/b"].displayName == "A" and "c" in merged
