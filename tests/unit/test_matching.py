"""Matching native IDs to marketplace IDs by the vendors' naming (SPEC §3 step 2), against the
bundled snapshot and small made-up lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.llm.mapping import to_marketplace, to_native
from dexto.llm.marketplace import MarketplaceCatalog, bundled_catalog, parse_models
from dexto.llm.matching import name_key
from dexto.llm.providers import PROVIDERS
from dexto.llm.registry import load_registry
from tests._samples import row

BUNDLED = bundled_catalog()
REG = load_registry()
ROUTEABLE_VENDORS = {
    p.marketplace_vendor for p in PROVIDERS.values() if p.routeable and p.marketplace_vendor
}
VENDOR_ROWS = [m for m in BUNDLED.models if m.vendor in ROUTEABLE_VENDORS]


def test_the_snapshot_has_the_routeable_vendors() -> None:
    assert BUNDLED.source == "bundled" and len(BUNDLED.models) > 300
    assert {m.vendor for m in VENDOR_ROWS} == ROUTEABLE_VENDORS


@pytest.mark.parametrize("mid", [m.id for m in VENDOR_ROWS if ":" not in m.id])
def test_every_listed_base_model_maps_to_native_and_back(mid: str) -> None:
    natives = to_native(mid, REG, BUNDLED)
    assert natives, f"{mid} has no native candidate"
    for n in natives:
        back = to_marketplace(n.provider, n.model, REG, BUNDLED)
        assert (back.id, back.verified) == (mid, True)
        assert back.source == ("registry" if n.verified else "catalog")


@pytest.mark.parametrize("mid", [m.id for m in VENDOR_ROWS if ":" in m.id])
def test_variants_have_no_native_and_are_never_a_forward_match(mid: str) -> None:
    assert to_native(mid, REG, BUNDLED) == []
    vendor, _, name = mid.partition("/")
    provider = next(p.id for p in PROVIDERS.values() if p.marketplace_vendor == vendor)
    assert to_marketplace(provider, name.split(":")[0], REG, BUNDLED).id != mid


@pytest.mark.parametrize(
    "provider,native,expected,source",
    [
        # date-stripped listings for dated native IDs; the first-run example
        ("anthropic", "claude-3-7-sonnet-20250219", "anthropic/claude-3.7-sonnet", "catalog"),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic/claude-3.5-haiku", "catalog"),
        # -latest and -chat-latest aliases
        ("anthropic", "claude-3-5-haiku-latest", "anthropic/claude-3.5-haiku", "catalog"),
        ("anthropic", "claude-3-7-sonnet-latest", "anthropic/claude-3.7-sonnet", "catalog"),
        ("openai", "gpt-5-chat-latest", "openai/gpt-5-chat", "catalog"),
        ("openai", "gpt-5.1-chat-latest", "openai/gpt-5.1-chat", "catalog"),
        # date-added listings for undated native aliases (Cohere)
        ("cohere", "command-r-plus", "cohere/command-r-plus-08-2024", "catalog"),
        ("cohere", "command-r", "cohere/command-r-08-2024", "catalog"),
        # dotted vs dashed versions, dates in slugs, case
        ("anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5", "catalog"),
        ("openai", "GPT-4.1-2025-04-14", "openai/gpt-4.1", "catalog"),
        ("openai", "O4-MINI", "openai/o4-mini", "registry"),
        ("openai", "gpt-5-pro-2025-10-06", "openai/gpt-5-pro", "catalog"),
        ("xai", "GROK-3-BETA", "x-ai/grok-3-beta", "catalog"),
        ("google", "gemini-2.5-pro-preview-06-05", "google/gemini-2.5-pro-preview", "catalog"),
        ("cohere", "COMMAND-A-03-2025", "cohere/command-a", "registry"),
        # a listing with a different date is never chosen
        ("cohere", "command-r-plus-04-2024", "cohere/command-r-plus-04-2024", "fallback"),
        (
            "anthropic",
            "claude-3-7-sonnet-20250101",
            "anthropic/claude-3-7-sonnet-20250101",
            "fallback",
        ),
    ],
)
def test_vendor_naming(provider: str, native: str, expected: str, source: str) -> None:
    mapped = to_marketplace(provider, native, REG, BUNDLED)
    assert (mapped.id, mapped.source) == (expected, source)
    if source == "catalog":
        assert BUNDLED.get(mapped.id) is not None  # verified against the list


def test_a_variant_is_never_chosen_silently() -> None:
    mapped = to_marketplace("google", "gemma-3n-e2b-it", REG, BUNDLED)
    assert mapped.source == "fallback" and not mapped.verified
    assert mapped.note is not None and "gemma-3n-e2b-it:free" in mapped.note
    base_too = MarketplaceCatalog(
        parse_models(
            [
                row("google/bar-1:free", "google/bar-1"),
                row("google/bar-1:thinking", "google/bar-1"),
                row("google/bar-1"),
            ]
        ),
        "fresh",
    )
    assert to_marketplace("google", "bar-1", REG, base_too).id == "google/bar-1"


def test_ties_choose_nothing_and_say_why() -> None:
    cat = MarketplaceCatalog(
        parse_models([row("openai/foo-x-2024-01-01"), row("openai/foo-x-2024-02-01")]), "fresh"
    )
    mapped = to_marketplace("openai", "foo-x", REG, cat)
    assert mapped.source == "fallback" and mapped.id == "openai/foo-x"
    assert mapped.note == (
        "ambiguous in the marketplace list: openai/foo-x-2024-01-01, openai/foo-x-2024-02-01"
    )
    same_slug = MarketplaceCatalog(
        parse_models([row("openai/a", "openai/shared-1"), row("openai/b", "openai/shared-1")]),
        "fresh",
    )
    tie = to_marketplace("openai", "shared-1", REG, same_slug)
    assert tie.source == "fallback" and tie.note and "openai/a, openai/b" in tie.note
    with_alias = MarketplaceCatalog(
        parse_models(
            [row("openai/foo-x-2024-01-01"), row("openai/foo-x-2024-02-01"), row("openai/foo-x")]
        ),
        "fresh",
    )
    assert to_marketplace("openai", "foo-x-latest", REG, with_alias).id == "openai/foo-x"


@pytest.mark.parametrize(
    "a,b",
    [
        ("claude-3-5-haiku", "claude-3.5-haiku"),
        ("claude-sonnet-4-5-20250929", "claude-4.5-sonnet-20250929"),
        ("grok-4-0709", "grok-4-07-09"),
        ("command-r-plus-08-2024", "COMMAND-R-PLUS-08-2024"),
        ("gpt-4.1-2025-04-14", "gpt-4.1-20250414"),
    ],
)
def test_equal_keys(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("gpt-5.1", "gpt-1.5"),
        ("claude-3-5-haiku", "claude-3-haiku"),
        ("o3-mini", "o3-mini-high"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-08-06"),
    ],
)
def test_different_keys(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


@settings(max_examples=150, deadline=None)
@given(
    provider=st.sampled_from(["anthropic", "openai", "google", "xai", "cohere", "groq"]),
    native=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,30}", fullmatch=True),
)
def test_a_catalog_match_is_always_a_listed_base_model(provider: str, native: str) -> None:
    mapped = to_marketplace(provider, native, REG, BUNDLED)
    if mapped.source == "catalog":
        assert BUNDLED.get(mapped.id) is not None and ":" not in mapped.id


@settings(max_examples=60, deadline=None)
@given(mid=st.sampled_from([m.id for m in VENDOR_ROWS if ":" not in m.id]), upper=st.booleans())
def test_lookups_ignore_case(mid: str, upper: bool) -> None:
    native = to_native(mid, REG, BUNDLED)[0]
    typed = native.model.upper() if upper else native.model.title()
    assert to_marketplace(native.provider, typed, REG, BUNDLED).id == mid


def test_the_decision_reason_says_why_nothing_was_chosen(tmp_path: object) -> None:
    from pathlib import Path

    from dexto.config.paths import DextoPaths
    from dexto.llm.context import build_context
    from dexto.llm.routing import decide
    from dexto.llm.selection import Selection

    cat = MarketplaceCatalog(
        parse_models([row("openai/foo-x-2024-01-01"), row("openai/foo-x-2024-02-01")]), "fresh"
    )
    ctx, _ = build_context(
        env={"DEXTO_API_KEY": "d"}, paths=DextoPaths(Path(str(tmp_path))), marketplace=cat
    )
    d = decide(Selection("openai", "foo-x"), ctx)
    assert not d.mapping_verified and d.effective_model == "openai/foo-x"
    assert "unverified" in d.reason and "ambiguous in the marketplace list" in d.reason
