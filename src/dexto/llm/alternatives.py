"""The reverse mapping surfaced (SPEC §3): native selections that run a marketplace model on
the user's own key.

For an ``openrouter`` selection, each native candidate of ``to_native`` (curated first; else one
derived from the marketplace list and checked to map back) for which the user holds a direct
credential is an alternative (route ``direct``, that credential); under ``prefer: dexto`` the
native selection itself would still go via Dexto, with that key as its fallback.
``dexto route --json`` lists them, the ``NO_CREDENTIALS`` fix names the first, and the catalog
rows carry the native candidate for the web picker's "run with my own key" offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dexto.llm.mapping import NativeCandidate, to_native
from dexto.llm.providers import get_provider
from dexto.llm.routing import RoutingContext, resolve_route
from dexto.llm.selection import Selection

__all__ = ["Alternative", "native_alternatives", "native_candidates"]


@dataclass(frozen=True, slots=True)
class Alternative:
    provider: str
    model: str
    route: str
    credential_source: str
    verified: bool  # the native ID is curated (else derived from the list)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "route": self.route,
            "credentialSource": self.credential_source,
        }


def native_candidates(marketplace_id: str, ctx: RoutingContext) -> list[NativeCandidate]:
    """``to_native``, reading the marketplace list only when the registry has no entry."""
    if ctx.registry.by_marketplace_id(marketplace_id):
        return to_native(marketplace_id, ctx.registry)
    market = ctx.marketplace()
    if market is None or not market.models:
        return []
    return to_native(marketplace_id, ctx.registry, market)


def native_alternatives(selection: Selection, ctx: RoutingContext) -> list[Alternative]:
    if selection.provider != "openrouter":
        return []
    out: list[Alternative] = []
    for cand in native_candidates(selection.model, ctx):
        choice = resolve_route(get_provider(cand.provider), cand.model, ctx)
        if choice.route is not None and choice.direct_source is not None:
            out.append(
                Alternative(
                    cand.provider, cand.model, "direct", choice.direct_source, cand.verified
                )
            )
    return out
