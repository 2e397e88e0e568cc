"""Namespace mapping between native model IDs and marketplace (OpenRouter) IDs — SPEC §3.

Forward (native → marketplace), first hit wins:
  1. ``registry``  the curated registry's explicit marketplace ID (looked up ignoring case);
  2. ``catalog``   a match against the marketplace list by the vendors' naming
                   (``dexto.llm.matching``); the hit is always an ID from the list;
  3. ``fallback``  the provider's vendor prefix (or an already-prefixed groq ID), *unverified*;
                   ``note`` says why step 2 chose nothing when it found candidates.
``openrouter`` IDs are marketplace IDs already and pass through untouched (``passthrough``).

Reverse (marketplace → native): curated entries when there are any, else the vendor's provider
with a native ID derived from the listing, kept only when it maps forward to the same listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dexto.llm.marketplace import MarketplaceCatalog
from dexto.llm.providers import PROVIDERS
from dexto.llm.registry import Registry

__all__ = ["MappedId", "NativeCandidate", "has_native_provider", "to_marketplace", "to_native"]

MappingSource = Literal["passthrough", "registry", "catalog", "fallback"]


@dataclass(frozen=True, slots=True)
class MappedId:
    id: str
    source: MappingSource
    note: str | None = None

    @property
    def verified(self) -> bool:
        return self.source != "fallback"


@dataclass(frozen=True, slots=True)
class NativeCandidate:
    provider: str
    model: str
    verified: bool  # curated; otherwise derived from the list and checked to map back


def _vendor(provider: str) -> str:
    p = PROVIDERS.get(provider)
    return p.marketplace_vendor if p and p.marketplace_vendor else provider


def to_marketplace(
    provider: str, native_id: str, registry: Registry, catalog: MarketplaceCatalog | None
) -> MappedId:
    """Translate ``native_id`` of ``provider`` into the marketplace namespace."""
    if provider == "openrouter":
        return MappedId(native_id, "passthrough")
    info = registry.get(provider, native_id)
    if info is not None and info.marketplace_id:
        return MappedId(info.marketplace_id, "registry")
    vendor = _vendor(provider)
    note = None
    if catalog is not None and catalog.models:
        hit = catalog.match(vendor, native_id)
        if hit.id is not None:
            return MappedId(hit.id, "catalog")
        note = hit.note
    if "/" in native_id:  # e.g. groq's openai/gpt-oss-120b is already vendor-prefixed
        return MappedId(native_id, "fallback", note)
    return MappedId(f"{vendor}/{native_id}", "fallback", note)


_VENDOR_TO_PROVIDER = {
    (p.marketplace_vendor or ""): p.id for p in PROVIDERS.values() if p.marketplace_vendor
}
# Vendors whose canonical slugs carry their native IDs (``anthropic/claude-3-7-sonnet-20250219``,
# ``openai/gpt-4.1-2025-04-14``); for the others the listing's own ID is the closer native name.
_NATIVE_FROM_SLUG = frozenset({"anthropic", "openai", "cohere"})


def _native_provider(marketplace_id: str) -> str | None:
    """The native provider of the ID's vendor, when the ID is a base model (no variant)."""
    vendor, _, rest = marketplace_id.partition("/")
    if not rest or ":" in rest:
        return None
    return _VENDOR_TO_PROVIDER.get(vendor.lower())


def has_native_provider(marketplace_id: str) -> bool:
    """Whether the ID's vendor has a native provider and the ID is a base model (no variant)."""
    return _native_provider(marketplace_id) is not None


def to_native(
    marketplace_id: str, registry: Registry, catalog: MarketplaceCatalog | None = None
) -> list[NativeCandidate]:
    """Reverse mapping for "run this with my own key": curated hits, else one derived guess."""
    curated = registry.by_marketplace_id(marketplace_id)
    if curated:
        return [NativeCandidate(m.provider, m.id, True) for m in curated]
    provider = _native_provider(marketplace_id)
    if provider is None:
        return []
    vendor, _, rest = marketplace_id.partition("/")
    if catalog is None or not catalog.models:
        return [NativeCandidate(provider, rest, False)]
    listed = catalog.get_ci(marketplace_id)
    if listed is None:
        return []
    names = [listed.id.partition("/")[2]]
    slug_name = listed.canonical_slug.partition("/")[2]
    if vendor.lower() in _NATIVE_FROM_SLUG and slug_name and slug_name not in names:
        names.insert(0, slug_name)
    for name in names:
        if to_marketplace(provider, name, registry, catalog).id == listed.id:
            return [NativeCandidate(provider, name, False)]
    return []
