"""The 402 fallback's model ID (SPEC §3, §7): an ID typed in the marketplace spelling under its
native provider goes via Dexto as typed, and its fallback sends the curated native ID that the
reverse mapping gives; with no curated ID the decision says why it sends the ID unchanged. Every
surface reads ``decision.fallback``, so the table checks the decision, its JSON and its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.context import build_context
from dexto.llm.marketplace import MarketplaceCatalog, parse_models
from dexto.llm.routing import RoutingContext, decide
from dexto.llm.selection import parse_selection
from tests._samples import SAMPLE_ROWS, row

CATALOG = MarketplaceCatalog(
    parse_models([*SAMPLE_ROWS, row("anthropic/claude-3.5-haiku", "anthropic/claude-3-5-haiku")]),
    "fresh",
)
ENV = {
    "DEXTO_API_KEY": "dxk_fallback_native",
    "ANTHROPIC_API_KEY": "sk-ant",
    "COHERE_API_KEY": "co",
    "XAI_API_KEY": "xai",
}

# (selection, what the gateway receives, what the fallback sends, words in the reason)
TABLE = [
    (
        "anthropic/claude-sonnet-4.5",
        "anthropic/claude-sonnet-4.5",
        "claude-sonnet-4-5-20250929",
        "the curated Anthropic ID for anthropic/claude-sonnet-4.5",
    ),
    (
        "anthropic/claude-opus-4.1",
        "anthropic/claude-opus-4.1",
        "claude-opus-4-1-20250805",
        "the curated Anthropic ID for anthropic/claude-opus-4.1",
    ),
    (
        "anthropic/Claude-Sonnet-4.5",
        "anthropic/claude-sonnet-4.5",
        "claude-sonnet-4-5-20250929",
        "Claude-Sonnet-4.5 is the marketplace spelling",
    ),
    (
        "cohere/command-a",
        "cohere/command-a",
        "command-a-03-2025",
        "the curated Cohere ID for cohere/command-a",
    ),
    (  # several curated IDs: the first in registry order, as alternatives and catalog rows
        "xai/grok-4-fast",
        "x-ai/grok-4-fast",
        "grok-4-fast-reasoning",
        "the first of 2: grok-4-fast-reasoning, grok-4-fast-non-reasoning",
    ),
    (  # no curated native ID: sent unchanged, and the decision says why
        "anthropic/claude-3.5-haiku",
        "anthropic/claude-3.5-haiku",
        "claude-3.5-haiku",
        "sends claude-3.5-haiku unchanged (unverified): it is the marketplace spelling of "
        "anthropic/claude-3.5-haiku and no curated Anthropic ID maps to it",
    ),
    # native spellings keep their ID and get no note
    (
        "anthropic/claude-sonnet-4-5-20250929",
        "anthropic/claude-sonnet-4.5",
        "claude-sonnet-4-5-20250929",
        None,
    ),
    ("anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4.5", "claude-sonnet-4-5", None),
    ("cohere/command-a-03-2025", "cohere/command-a", "command-a-03-2025", None),
]


def _ctx(tmp: Path) -> RoutingContext:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    ctx, _ = build_context(env=ENV, paths=DextoPaths(home), marketplace=CATALOG)
    return ctx


@pytest.mark.parametrize("sel,gateway_id,fallback_id,note", TABLE)
def test_the_fallback_sends_the_native_id(
    tmp_path: Path, sel: str, gateway_id: str, fallback_id: str, note: str | None
) -> None:
    d = decide(parse_selection(sel), _ctx(tmp_path))
    assert d.route == "dexto" and d.effective_model == gateway_id
    assert d.fallback is not None
    assert d.fallback.effective_model == fallback_id
    assert d.to_json()["fallback"]["effectiveModel"] == fallback_id
    if note is None:
        assert "If credits run out" not in d.reason
    else:
        assert note in d.reason


# The direct route (prefer direct, or not logged in to Dexto) sends the same ID as the fallback:
# (selection, what the provider receives, words in the reason).
DIRECT_TABLE = [
    (
        "anthropic/claude-sonnet-4.5",
        "claude-sonnet-4-5-20250929",
        "This call sends claude-sonnet-4-5-20250929, the curated Anthropic ID for "
        "anthropic/claude-sonnet-4.5: claude-sonnet-4.5 is the marketplace spelling.",
    ),
    (
        "anthropic/claude-opus-4.1",
        "claude-opus-4-1-20250805",
        "This call sends claude-opus-4-1-20250805, the curated Anthropic ID for "
        "anthropic/claude-opus-4.1",
    ),
    (
        "anthropic/Claude-Sonnet-4.5",
        "claude-sonnet-4-5-20250929",
        "Claude-Sonnet-4.5 is the marketplace spelling",
    ),
    ("cohere/command-a", "command-a-03-2025", "the curated Cohere ID for cohere/command-a"),
    (
        "xai/grok-4-fast",
        "grok-4-fast-reasoning",
        "the first of 2: grok-4-fast-reasoning, grok-4-fast-non-reasoning",
    ),
    (  # no curated native ID: sent unchanged, and the decision says why
        "anthropic/claude-3.5-haiku",
        "claude-3.5-haiku",
        "This call sends claude-3.5-haiku unchanged (unverified): it is the marketplace spelling "
        "of anthropic/claude-3.5-haiku and no curated Anthropic ID maps to it",
    ),
    ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", None),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", None),
    ("cohere/command-a-03-2025", "command-a-03-2025", None),
]
NOT_LOGGED_IN = {k: v for k, v in ENV.items() if k != "DEXTO_API_KEY"}


@pytest.mark.parametrize("how", ["prefer-direct", "not-logged-in"])
@pytest.mark.parametrize("sel,direct_id,note", DIRECT_TABLE)
def test_the_direct_route_sends_the_native_id(
    tmp_path: Path, how: str, sel: str, direct_id: str, note: str | None
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = ENV if how == "prefer-direct" else NOT_LOGGED_IN
    prefer = "direct" if how == "prefer-direct" else None
    ctx, _ = build_context(env=env, paths=DextoPaths(home), marketplace=CATALOG, prefer=prefer)
    d = decide(parse_selection(sel), ctx)
    assert d.route == "direct" and d.fallback is None
    assert d.effective_model == direct_id
    assert d.to_json()["effectiveModel"] == direct_id
    why = "prefers your own key" if how == "prefer-direct" else "not logged in to Dexto"
    assert why in d.reason
    if note is None:
        assert "This call sends" not in d.reason
    else:
        assert note in d.reason
