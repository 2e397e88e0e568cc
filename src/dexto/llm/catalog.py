"""The catalog answer (SPEC §8.4), built in one place for the CLI, the server and the web UI.

registry ∪ marketplace (under ``openrouter``) ∪ custom models → annotated with the routing state
of ``provider_state`` → filtered by preferences. ``dexto`` is never a provider here. Providers
without effective credentials stay listed and flagged (with the fix), never silently hidden.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from dexto.auth.credentials import direct_fix_hint
from dexto.config.custom_models import CustomModel
from dexto.config.preferences import Preferences
from dexto.llm.marketplace import MarketplaceCatalog, MarketplaceModel
from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS
from dexto.llm.registry import ModelInfo
from dexto.llm.routing import RoutingContext, provider_state

__all__ = ["MARKETPLACE_LABEL", "build_catalog"]

MARKETPLACE_LABEL = "Dexto Marketplace"


def _registry_entry(m: ModelInfo) -> dict[str, Any]:
    return {
        "id": m.id, "displayName": m.display_name, "marketplaceId": m.marketplace_id,
        "contextWindow": m.context_window, "maxOutputTokens": m.max_output_tokens,
        "featured": m.featured, "default": m.default, "custom": False, "source": "registry",
        "pricing": m.pricing.to_json(), "capabilities": m.capabilities.to_json(),
    }


def _marketplace_entry(m: MarketplaceModel) -> dict[str, Any]:
    pricing = {k: v for k, v in (("inputPerM", m.input_per_m), ("outputPerM", m.output_per_m))
               if v is not None}
    return {
        "id": m.id, "displayName": m.name, "marketplaceId": m.id,
        "contextWindow": m.context_length, "maxOutputTokens": m.max_completion_tokens,
        "featured": False, "default": False, "custom": False, "source": "marketplace",
        "pricing": pricing,
        "capabilities": {"tools": "tools" in m.supported_parameters,
                         "vision": "image" in m.input_modalities,
                         "reasoning": "reasoning" in m.supported_parameters,
                         "fileTypes": [t for t in ("image", "file", "audio")
                                       if t in m.input_modalities]},
    }


def _custom_entry(m: CustomModel, market: MarketplaceCatalog | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": m.name, "displayName": m.displayName or m.name,
        "marketplaceId": m.name if m.provider == "openrouter" else None,
        "contextWindow": m.maxInputTokens, "maxOutputTokens": m.maxOutputTokens,
        "featured": False, "default": False, "custom": True, "source": "custom",
        "pricing": {}, "capabilities": {"tools": True, "vision": False, "reasoning": False,
                                        "fileTypes": []},
    }
    if m.baseURL:
        entry["baseURL"] = m.baseURL
    if m.provider == "openrouter" and market is not None:
        entry["validation"] = market.status(m.name)
        listed = market.get(m.name)
        if listed is not None:
            entry["pricing"] = _marketplace_entry(listed)["pricing"]
    return entry


def _matches(entry: dict[str, Any], provider: str, q: str) -> bool:
    hay = f"{provider}/{entry['id']} {entry['displayName']} {entry.get('marketplaceId') or ''}"
    return all(word in hay.lower() for word in q.lower().split())


def _allowed(provider: str, model_id: str, prefs: Preferences) -> bool:
    if prefs.allowedModels is None:
        return True
    return any(fnmatchcase(f"{provider}/{model_id}", pat) for pat in prefs.allowedModels)


def _provider_models(pid: str, ctx: RoutingContext, customs: list[CustomModel],
                     market: MarketplaceCatalog | None) -> list[dict[str, Any]]:
    models = [_registry_entry(m) for m in ctx.registry.models(pid)]
    if pid == "openrouter" and market is not None:
        models += [_marketplace_entry(m) for m in market.models]
    models += [_custom_entry(m, market) for m in customs if m.provider == pid]
    models.sort(key=lambda e: (not e["featured"], not e["custom"]))  # stable: featured first
    return models


def build_catalog(
    ctx: RoutingContext,
    prefs: Preferences,
    custom_models: list[CustomModel],
    *,
    provider: str | None = None,
    search: str | None = None,
    include_empty: bool = True,
) -> dict[str, Any]:
    """The JSON answer of ``dexto models --json`` and ``GET /llm/catalog``."""
    market = ctx.marketplace()
    has_dexto = ctx.credentials.has_dexto
    prefer_dexto = ctx.policy.prefer == "dexto"
    providers: dict[str, Any] = {}
    for pid, p in PROVIDERS.items():
        if pid == INTERNAL_PROVIDER or pid in prefs.disabledProviders:
            continue
        if prefs.enabledProviders is not None and pid not in prefs.enabledProviders:
            continue
        if provider is not None and pid != provider:
            continue
        models = [e for e in _provider_models(pid, ctx, custom_models, market)
                  if _allowed(pid, e["id"], prefs) and (not search or _matches(e, pid, search))]
        if not models and (search or not include_empty):
            continue
        state = provider_state(pid, ctx)
        name = MARKETPLACE_LABEL if pid == "openrouter" and has_dexto and prefer_dexto else p.name
        entry: dict[str, Any] = {"name": name, **state.to_json(), "directOnly": not p.routeable,
                                 "customModels": p.custom_models, "models": models}
        if not state.has_effective_credentials:
            entry["fix"] = ("run `dexto login` or " if p.routeable else "") + direct_fix_hint(p)
        providers[pid] = entry
    return {
        "auth": {"hasDextoKey": has_dexto, "preferDextoCredits": prefer_dexto},
        "marketplace": {"state": market.state if market else "missing",
                        "count": len(market.models) if market else 0},
        "providers": providers,
    }
