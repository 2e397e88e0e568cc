"""The routing decision (SPEC §6): one function, called by every surface.

``decide(selection, ctx)`` returns a ``RouteDecision`` or raises a typed ``DextoError``; it never
raises anything else. ``provider_state(provider, ctx)`` is the observable per-provider state and
uses the same route choice (``choose_route``), so catalogs and UIs cannot disagree with runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dexto.auth.credentials import NO_KEY_NEEDED, CredentialSnapshot, direct_fix_hint
from dexto.config.custom_models import CustomModel
from dexto.config.endpoints import DEFAULT_GATEWAY_URL, gateway_root
from dexto.errors import ConfigError, NoCredentialsError
from dexto.llm.mapping import MappedId, to_marketplace
from dexto.llm.marketplace import MarketplaceCatalog
from dexto.llm.policy import RoutingPolicy
from dexto.llm.providers import INTERNAL_PROVIDER, Provider, get_provider
from dexto.llm.registry import Registry
from dexto.llm.selection import Selection, validate_model_id

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "FallbackPlan",
    "ProviderState",
    "Route",
    "RouteDecision",
    "RoutingContext",
    "choose_route",
    "decide",
    "gateway_root",
    "provider_state",
]

Route = Literal["dexto", "direct"]

_MAPPING_WORDS = {
    "registry": "by the curated registry",
    "catalog": "by matching the marketplace list",
    "fallback": "by vendor prefix (unverified: not in the registry or the marketplace list)",
}


@dataclass(frozen=True, slots=True)
class FallbackPlan:
    effective_provider: str
    effective_model: str
    credential_source: str
    base_url: str | None
    route: Route = "direct"
    on: str = "INSUFFICIENT_CREDITS"

    def to_json(self) -> dict[str, Any]:
        return {"route": self.route, "effectiveProvider": self.effective_provider,
                "effectiveModel": self.effective_model, "on": self.on}


@dataclass(frozen=True, slots=True)
class RouteDecision:
    provider: str
    model: str
    route: Route
    effective_provider: str
    effective_model: str
    base_url: str | None
    credential_source: str
    mapping_verified: bool
    fallback: FallbackPlan | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "model": self.model, "route": self.route,
            "effectiveProvider": self.effective_provider,
            "effectiveModel": self.effective_model, "baseURL": self.base_url,
            "credentialSource": self.credential_source,
            "mappingVerified": self.mapping_verified,
            "fallback": self.fallback.to_json() if self.fallback else None,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ProviderState:
    can_route_via_dexto: bool
    has_direct_key: bool
    effective_route: Route | None

    @property
    def has_effective_credentials(self) -> bool:
        return self.effective_route is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "canRouteViaDexto": self.can_route_via_dexto,
            "hasDirectKey": self.has_direct_key,
            "hasEffectiveCredentials": self.has_effective_credentials,
            "credentialSources": {"dexto": self.can_route_via_dexto,
                                  "direct": self.has_direct_key},
            "effectiveRoute": self.effective_route or "none",
        }


@dataclass(slots=True)
class RoutingContext:
    """Everything the decision reads. Built once per process/request by ``dexto.context``."""

    credentials: CredentialSnapshot
    policy: RoutingPolicy
    registry: Registry
    env: Mapping[str, str]
    custom_models: Mapping[tuple[str, str], CustomModel] = field(default_factory=dict)
    marketplace_loader: Callable[[], MarketplaceCatalog] | None = None
    agent_base_urls: Mapping[str, str] = field(default_factory=dict)  # provider → llm.baseURL
    _marketplace: MarketplaceCatalog | None = None

    def marketplace(self) -> MarketplaceCatalog | None:
        if self._marketplace is None and self.marketplace_loader is not None:
            self._marketplace = self.marketplace_loader()
        return self._marketplace


def choose_route(p: Provider, has_dexto: bool, has_direct: bool, prefer: str) -> Route | None:
    """SPEC §6 steps 1, 3, 4 — the single rule for which route serves a provider."""
    if not p.routeable:
        return "direct" if has_direct else None
    if has_dexto and (not has_direct or prefer == "dexto"):
        return "dexto"
    return "direct" if has_direct else None


def provider_state(provider_id: str, ctx: RoutingContext) -> ProviderState:
    p = get_provider(provider_id)
    has_dexto = ctx.credentials.has_dexto and p.routeable
    has_direct = ctx.credentials.direct_source(provider_id) is not None
    return ProviderState(has_dexto, has_direct,
                         choose_route(p, has_dexto, has_direct, ctx.policy.prefer))


def _direct_source(p: Provider, custom: CustomModel | None, ctx: RoutingContext) -> str | None:
    if custom is not None:
        if custom.apiKeyEnv and ctx.env.get(custom.apiKeyEnv, "").strip():
            return f"env:{custom.apiKeyEnv}"
        if custom.apiKeyRef and custom.apiKeyRef in ctx.credentials.store_names:
            return f"auth-store:{custom.apiKeyRef}"
        if custom.apiKeyEnv or custom.apiKeyRef:  # the model names its key: never another
            return None
    return ctx.credentials.direct_source(p.id)


def _direct_base_url(p: Provider, custom: CustomModel | None, ctx: RoutingContext) -> str | None:
    if custom is not None and custom.baseURL:
        return custom.baseURL
    if p.id in ctx.agent_base_urls:
        return ctx.agent_base_urls[p.id]
    return p.resolve_base_url(ctx.env)


def _no_credentials(p: Provider, sel: Selection, custom: CustomModel | None,
                    ctx: RoutingContext) -> NoCredentialsError:
    var = custom.apiKeyEnv if custom is not None and custom.apiKeyEnv else (
        ctx.credentials.unresolved.get(p.id))
    if var:
        return NoCredentialsError(
            f"no credentials for {sel}: the {p.name} key is read from ${var}, which is not set",
            fix=f"export {var}=<your {p.name} key>, or change the reference to a variable "
            "that is set")
    if custom is not None and custom.apiKeyRef:
        return NoCredentialsError(
            f"no credentials for {sel}: its key is the auth-store entry {custom.apiKeyRef}, "
            "which is missing",
            fix=f"store the key again: `dexto models add --provider {p.id} --name {sel.model} "
            "--api-key - --replace` (add the model's other flags, e.g. --base-url)")
    hint = direct_fix_hint(p)
    if p.routeable:
        return NoCredentialsError(
            f"no credentials for {sel}: not logged in to Dexto and no {p.name} key found",
            fix=f"run `dexto login` to use Dexto credits, or {hint}")
    return NoCredentialsError(f"no credentials for {sel}: {p.name} is billed directly and "
                              "no credential was found", fix=hint)


def decide(selection: Selection, ctx: RoutingContext) -> RouteDecision:
    """Choose route, effective provider/model, credential source and fallback for a selection."""
    p = get_provider(selection.provider)
    model = validate_model_id(selection.model)
    custom = ctx.custom_models.get((p.id, model))
    direct_src = _direct_source(p, custom, ctx)
    has_direct = direct_src is not None
    has_dexto = ctx.credentials.has_dexto and p.routeable
    route = choose_route(p, has_dexto, has_direct, ctx.policy.prefer)
    if route is None:
        raise _no_credentials(p, selection, custom, ctx)
    if route == "direct":
        assert direct_src is not None
        base = _direct_base_url(p, custom, ctx)
        if base is None and p.requires_base_url:
            raise ConfigError(f"{p.name} model {model!r} has no baseURL", field="baseURL",
                              fix=f"add it with `dexto models add --provider {p.id} --name "
                              f"{model} --base-url URL`")
        return RouteDecision(selection.provider, model, "direct", p.id, model, base, direct_src,
                             True, None, _direct_reason(p, direct_src, has_dexto, ctx))
    mapped = to_marketplace(p.id, model, ctx.registry,
                            ctx.marketplace() if ctx.registry.get(p.id, model) is None else None)
    fallback = None
    if has_direct and ctx.policy.fallback_on_insufficient_credits:
        assert direct_src is not None
        fallback = FallbackPlan(p.id, model, direct_src, _direct_base_url(p, custom, ctx))
    return RouteDecision(
        selection.provider, model, "dexto", INTERNAL_PROVIDER, mapped.id,
        gateway_root(ctx.env) + "/v1", ctx.credentials.dexto_source or "",
        mapped.verified, fallback, _dexto_reason(p, model, mapped, direct_src, ctx))


def _dexto_reason(p: Provider, model: str, mapped: MappedId, direct_src: str | None,
                  ctx: RoutingContext) -> str:
    src = ctx.credentials.dexto_source
    if direct_src is None:
        why = f"no {p.name} key is available"
    else:
        why = f"the policy prefers Dexto credits ({ctx.policy.source})"
        if ctx.policy.fallback_on_insufficient_credits:
            why += f", with your {direct_src} as fallback if credits run out"
    text = f"Routed via Dexto credits ({src}) because {why}"
    if mapped.source == "passthrough":
        return text + f"; marketplace ID {model} is sent unchanged."
    return text + f"; {model} is sent as {mapped.id} {_MAPPING_WORDS[mapped.source]}."


def _direct_reason(p: Provider, src: str, has_dexto: bool, ctx: RoutingContext) -> str:
    who = "" if src == NO_KEY_NEEDED else f" with {src}"
    if not p.routeable:
        return (f"Routed directly to {p.name}{who}: it is billed by your own account and is "
                "never routed via Dexto.")
    if has_dexto:
        return (f"Routed directly to {p.name}{who} because the policy prefers your own key "
                f"({ctx.policy.source}).")
    return f"Routed directly to {p.name}{who} because you are not logged in to Dexto."
