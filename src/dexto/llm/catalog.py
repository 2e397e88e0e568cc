"""The catalog answer (SPEC §8.4), built in one place for the CLI, the server and the web UI.

registry ∪ marketplace (under ``openrouter``) ∪ custom models → annotated with routing state →
filtered by preferences. ``dexto`` is never a provider here. Each provider carries
``provider_state`` (its own credentials); each model row carries ``model_state`` — what
``decide()`` would choose for that very row, custom models' own credentials included. Entries
without effective credentials stay listed and flagged (with the fix), never silently hidden.
A custom ``openrouter`` model that is also listed in the marketplace is one row (the custom one,
with the listing's facts). Marketplace rows that map to a native model carry ``native`` (the
web picker's "run with my own key" offer); rows of featured curated models are featured.
"""

from __future__ import annotations

from typing import Any

from dexto._url import redact_url
from dexto.auth.credentials import direct_fix_hint
from dexto.config.custom_models import CustomModel
from dexto.config.preferences import Preferences, model_allowed
from dexto.llm.marketplace import MarketplaceCatalog, MarketplaceModel
from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS, Provider
from dexto.llm.registry import ModelInfo
from dexto.llm.routing import (
    ProviderState,
    RoutingContext,
    model_state,
    native_candidates,
    not_runnable_fix,
    provider_state,
)

__all__ = ["MARKETPLACE_LABEL", "build_catalog"]

MARKETPLACE_LABEL = "Dexto Marketplace"


def _registry_entry(m: ModelInfo) -> dict[str, Any]:
    return {
        "id": m.id,
        "displayName": m.display_name,
        "marketplaceId": m.marketplace_id,
        "contextWindow": m.context_window,
        "maxOutputTokens": m.max_output_tokens,
        "featured": m.featured,
        "default": m.default,
        "custom": False,
        "source": "registry",
        "pricing": m.pricing.to_json(),
        "capabilities": m.capabilities.to_json(),
    }


def _marketplace_entry(m: MarketplaceModel, featured: bool = False) -> dict[str, Any]:
    pricing = {
        k: v
        for k, v in (("inputPerM", m.input_per_m), ("outputPerM", m.output_per_m))
        if v is not None
    }
    return {
        "id": m.id,
        "displayName": m.name,
        "marketplaceId": m.id,
        "contextWindow": m.context_length,
        "maxOutputTokens": m.max_completion_tokens,
        "featured": featured,
        "default": False,
        "custom": False,
        "source": "marketplace",
        "pricing": pricing,
        "capabilities": {
            "tools": "tools" in m.supported_parameters,
            "vision": "image" in m.input_modalities,
            "reasoning": "reasoning" in m.supported_parameters,
            "fileTypes": [t for t in ("image", "file", "audio") if t in m.input_modalities],
        },
    }


def _custom_entry(m: CustomModel, market: MarketplaceCatalog | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": m.name,
        "displayName": m.displayName or m.name,
        "marketplaceId": m.name if m.provider == "openrouter" else None,
        "contextWindow": m.maxInputTokens,
        "maxOutputTokens": m.maxOutputTokens,
        "featured": False,
        "default": False,
        "custom": True,
        "source": "custom",
        "pricing": {},
        "capabilities": {"tools": True, "vision": False, "reasoning": False, "fileTypes": []},
    }
    if m.baseURL:
        entry["baseURL"] = redact_url(m.baseURL)
    if m.provider == "openrouter" and market is not None:
        entry["validation"] = market.status(m.name)
        listed = market.get(m.name)
        if listed is not None:
            facts = _marketplace_entry(listed)
            entry["pricing"] = facts["pricing"]
            entry["capabilities"] = facts["capabilities"]
            entry["contextWindow"] = m.maxInputTokens or facts["contextWindow"]
            entry["maxOutputTokens"] = m.maxOutputTokens or facts["maxOutputTokens"]
    if m.provider == "local":
        entry["runnable"] = False
    return entry


def _matches(entry: dict[str, Any], provider: str, q: str) -> bool:
    hay = f"{provider}/{entry['id']} {entry['displayName']} {entry.get('marketplaceId') or ''}"
    return all(word in hay.lower() for word in q.lower().split())


def _provider_models(
    pid: str, ctx: RoutingContext, customs: list[CustomModel], market: MarketplaceCatalog | None
) -> list[dict[str, Any]]:
    models = [_registry_entry(m) for m in ctx.registry.models(pid)]
    mine = [m for m in customs if m.provider == pid]
    if pid == "openrouter" and market is not None:
        saved = {m.name for m in mine}
        featured = {m.marketplace_id for m in ctx.registry.all() if m.featured}
        models += [
            _marketplace_entry(m, m.id in featured) for m in market.models if m.id not in saved
        ]
    models += [_custom_entry(m, market) for m in mine]
    models.sort(key=lambda e: (not e["featured"], not e["custom"]))  # stable: featured first
    return models


def _annotate(
    p: Provider, entry: dict[str, Any], ctx: RoutingContext, states: dict[str, ProviderState]
) -> None:
    """Give the row its own route (``model_state``) and, for marketplace rows, ``native``."""
    st = model_state(p.id, entry["id"], ctx)
    entry["hasEffectiveCredentials"] = st.has_effective_credentials
    entry["effectiveRoute"] = st.effective_route or "none"
    if p.id != "openrouter" or ":" in entry["id"]:
        return
    for cand in native_candidates(entry["id"], ctx):
        if cand.provider not in states:
            states[cand.provider] = provider_state(cand.provider, ctx)
        native = model_state(cand.provider, cand.model, ctx)
        entry["native"] = {
            "provider": cand.provider,
            "model": cand.model,
            "verified": cand.verified,
            "hasDirectKey": states[cand.provider].has_direct_key,
            "effectiveRoute": native.effective_route or "none",
        }
        return


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
    states: dict[str, ProviderState] = {}
    for pid, p in PROVIDERS.items():
        if pid == INTERNAL_PROVIDER or pid in prefs.disabledProviders:
            continue
        if prefs.enabledProviders is not None and pid not in prefs.enabledProviders:
            continue
        if provider is not None and pid != provider:
            continue
        models = [
            e
            for e in _provider_models(pid, ctx, custom_models, market)
            if model_allowed(prefs.allowedModels, pid, e["id"])
            and (not search or _matches(e, pid, search))
        ]
        if not models and (search or not include_empty):
            continue
        for m in models:
            _annotate(p, m, ctx, states)
        state = provider_state(pid, ctx)
        name = MARKETPLACE_LABEL if pid == "openrouter" and has_dexto and prefer_dexto else p.name
        entry: dict[str, Any] = {
            "name": name,
            **state.to_json(),
            "directOnly": not p.routeable,
            "customModels": p.custom_models,
            "models": models,
        }
        blocked = not_runnable_fix(p)
        if blocked is not None:
            entry["runnable"] = False
            entry["fix"] = blocked
        elif not state.has_effective_credentials:
            entry["fix"] = ("run `dexto login` or " if p.routeable else "") + direct_fix_hint(p)
        providers[pid] = entry
    return {
        "auth": {"hasDextoKey": has_dexto, "preferDextoCredits": prefer_dexto},
        "marketplace": market.describe()
        if market
        else {"state": "missing", "source": "none", "count": 0},
        "providers": providers,
    }
