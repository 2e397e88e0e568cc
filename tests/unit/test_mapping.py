"""Namespace mapping, SPEC §3: registry → catalog match → vendor prefix (unverified)."""

import pytest

from dexto.llm.mapping import to_marketplace, to_native
from dexto.llm.marketplace import MarketplaceCatalog, parse_models
from dexto.llm.registry import load_registry
from tests._samples import SAMPLE_ROWS

CATALOG = MarketplaceCatalog(parse_models(SAMPLE_ROWS), "fresh")


@pytest.mark.parametrize(
    "provider,native,expected,source",
    [
        # 1. explicit table
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5", "registry"),
        ("cohere", "command-a-03-2025", "cohere/command-a", "registry"),
        # 2. catalog-derived: canonical slug carries the date / native name
        ("anthropic", "claude-opus-9-20300101", "anthropic/claude-opus-9", "catalog"),
        ("anthropic", "claude-opus-9", "anthropic/claude-opus-9", "catalog"),
        ("cohere", "command-z-11-2031", "cohere/command-z", "catalog"),
        ("xai", "grok-7-20301201", "x-ai/grok-7", "catalog"),
        ("groq", "qwen/qwen9-coder-480b-a35b", "qwen/qwen9-coder", "catalog"),
        # 3. vendor-prefix fallback, unverified
        ("anthropic", "claude-unknown-1", "anthropic/claude-unknown-1", "fallback"),
        ("xai", "grok-99", "x-ai/grok-99", "fallback"),
        ("groq", "acme/some-model", "acme/some-model", "fallback"),
        # openrouter IDs are already marketplace IDs
        ("openrouter", "z-ai/glm-4.5-air:free", "z-ai/glm-4.5-air:free", "passthrough"),
    ],
)
def test_forward_mapping(provider: str, native: str, expected: str, source: str) -> None:
    mapped = to_marketplace(provider, native, load_registry(), CATALOG)
    assert (mapped.id, mapped.source) == (expected, source)
    assert mapped.verified == (source != "fallback")


def test_naive_prefixing_bug_is_not_reproduced() -> None:
    mapped = to_marketplace("anthropic", "claude-sonnet-4-5-20250929", load_registry(), None)
    assert mapped.id != "anthropic/claude-sonnet-4-5-20250929"


def test_without_catalog_uncurated_ids_fall_back_unverified() -> None:
    mapped = to_marketplace(
        "anthropic", "claude-opus-9-20300101", load_registry(), MarketplaceCatalog.empty()
    )
    assert mapped.id == "anthropic/claude-opus-9-20300101" and not mapped.verified


def test_reverse_mapping() -> None:
    reg = load_registry()
    hits = to_native("anthropic/claude-sonnet-4.5", reg)
    assert ("anthropic", "claude-sonnet-4-5-20250929", True) in [
        (h.provider, h.model, h.verified) for h in hits
    ]
    guess = to_native("x-ai/grok-99", reg)
    assert [(g.provider, g.model, g.verified) for g in guess] == [("xai", "grok-99", False)]
    assert to_native("z-ai/glm-4.5-air:free", reg) == []


def test_every_curated_model_round_trips() -> None:
    reg = load_registry()
    for m in reg.all():
        assert m.marketplace_id is not None
        fwd = to_marketplace(m.provider, m.id, reg, None)
        assert fwd.id == m.marketplace_id
        assert (m.provider, m.id) in [(h.provider, h.model) for h in to_native(fwd.id, reg)]
