"""Namespace mapping between native model IDs and marketplace (OpenRouter) IDs — SPEC §3.

Forward (native → marketplace), first hit wins:
  1. ``registry``  the curated registry's explicit marketplace ID;
  2. ``catalog``   a match against the cached marketplace list (id or canonical slug);
  3. ``fallback``  the provider's vendor prefix (or an already-prefixed groq ID), *unverified*.
``openrouter`` IDs are marketplace IDs already and pass through untouched (``passthrough``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dexto.llm.marketplace import MarketplaceCatalog
from dexto.llm.providers import PROVIDERS
from dexto.llm.registry import Registry

__all__ = ["MappedId", "NativeCandidate", "to_marketplace", "to_native"]

MappingSource = Literal["passthrough", "registry", "catalog", "fallback"]


@dataclass(frozen=True, slots=True)
class MappedId:
    id: str
    source: MappingSource

    @property
    def verified(self) -> bool:
        return self.source != "fallback"


@dataclass(frozen=True, slots=True)
class NativeCandidate:
    provider: str
    model: str
    verified: bool


def _vendor(provider: str) -> str:
    p = PROVIDERS.get(provider)
    return (p.marketplace_vendor if p and p.marketplace_vendor else provider)


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
    if catalog is not None and catalog.models:
        hit = catalog.match_native(vendor, native_id)
        if hit is not None:
            return MappedId(hit, "catalog")
    if "/" in native_id:  # e.g. groq's openai/gpt-oss-120b is already vendor-prefixed
        return MappedId(native_id, "fallback")
    return MappedId(f"{vendor}/{native_id}", "fallback")


_VENDOR_TO_PROVIDER = {
    (p.marketplace_vendor or ""): p.id for p in PROVIDERS.values() if p.marketplace_vendor
}


def to_native(marketplace_id: str, registry: Registry) -> list[NativeCandidate]:
    """Reverse mapping for "run this via my own key": curated hits first, then a vendor guess."""
    curated = registry.by_marketplace_id(marketplace_id)
    hits = [NativeCandidate(m.provider, m.id, True) for m in curated]
    if hits:
        return hits
    vendor, _, rest = marketplace_id.partition("/")
    provider = _VENDOR_TO_PROVIDER.get(vendor)
    if provider and rest and ":" not in rest:
        return [NativeCandidate(provider, rest, False)]
    return []
