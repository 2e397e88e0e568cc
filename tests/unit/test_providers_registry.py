"""The provider table and the curated registry are consistent data."""

import re

import pytest

from dexto.errors import ProviderNotAllowedError, UnknownProviderError
from dexto.llm.providers import PROVIDERS, get_provider
from dexto.llm.registry import load_registry

ROUTEABLE = {"anthropic", "openai", "google", "groq", "xai", "cohere", "openrouter"}
DIRECT_ONLY = {"bedrock", "vertex", "ollama", "local", "openai-compatible", "litellm", "glama"}
MARKETPLACE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*/[A-Za-z0-9][\w.\-:]*$")


def test_provider_table_matches_spec() -> None:
    assert {p for p, v in PROVIDERS.items() if v.routeable} == ROUTEABLE
    assert {p for p, v in PROVIDERS.items() if not v.routeable} == DIRECT_ONLY
    assert "dexto" not in PROVIDERS
    assert get_provider("google").env_vars == (
        "GOOGLE_GENERATIVE_AI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
    )
    assert get_provider("xai").marketplace_vendor == "x-ai"
    assert get_provider("openai-compatible").requires_base_url


@pytest.mark.parametrize(
    "pid,var",
    [
        ("anthropic", "ANTHROPIC_BASE_URL"),
        ("openai-compatible", "OPENAI_COMPATIBLE_BASE_URL"),
        ("groq", "GROQ_BASE_URL"),
    ],
)
def test_base_url_env_override(pid: str, var: str) -> None:
    p = get_provider(pid)
    assert p.base_url_env == var
    assert p.resolve_base_url({var: "http://127.0.0.1:9999/v1/"}) == "http://127.0.0.1:9999/v1"
    assert p.resolve_base_url({}) == p.base_url


def test_get_provider_errors_are_typed() -> None:
    with pytest.raises(ProviderNotAllowedError) as e:
        get_provider("dexto")
    assert "dexto login" in e.value.fix
    with pytest.raises(UnknownProviderError) as u:
        get_provider("antropic")
    assert "anthropic" in u.value.fix


def test_registry_size_defaults_and_ids() -> None:
    reg = load_registry()
    models = reg.all()
    assert len(models) >= 45
    for pid in ("anthropic", "openai", "google", "groq", "xai", "cohere"):
        ms = reg.models(pid)
        assert ms, pid
        assert sum(m.default for m in ms) == 1, pid
        assert any(m.featured for m in ms), pid
    seen = set()
    for m in models:
        assert (m.provider, m.id) not in seen
        seen.add((m.provider, m.id))
        assert m.marketplace_id and MARKETPLACE_ID.match(m.marketplace_id), m
        assert m.context_window and m.max_output_tokens and m.context_window > 0
        assert m.pricing.input_per_m is not None and m.pricing.output_per_m is not None


@pytest.mark.parametrize(
    "provider,native,marketplace",
    [
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"),
        ("groq", "llama-3.3-70b-versatile", "meta-llama/llama-3.3-70b-instruct"),
        ("cohere", "command-a-03-2025", "cohere/command-a"),
        ("google", "gemini-2.0-flash", "google/gemini-2.0-flash-001"),
    ],
)
def test_spec_examples_are_curated(provider: str, native: str, marketplace: str) -> None:
    info = load_registry().get(provider, native)
    assert info is not None and info.marketplace_id == marketplace
