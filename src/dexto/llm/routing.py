"""The routing decision (SPEC §6): one function, called by every surface.

``decide(selection, ctx)`` returns a ``RouteDecision`` or raises a typed ``DextoError``; it never
raises anything else. ``model_state(provider, model, ctx)`` is the observable state of one catalog
row and ``provider_state(provider, ctx)`` that of a provider; both use ``resolve_route``, the very
function ``decide`` uses (custom models' own credentials included), so catalogs and UIs cannot
disagree with runtime. Local GGUF files cannot be run by dexto: they never get a route.

The reverse mapping surfaced (SPEC §3): for an ``openrouter`` selection, each native candidate of
``to_native`` (curated first; else one derived from the marketplace list and checked to map back)
for which the user holds a direct credential is an *alternative* (route ``direct``, that
credential; under ``prefer: dexto`` the native selection itself would still go via Dexto, with
that key as its fallback). Decisions carry them (``dexto route --json``, ``/llm/current``), the
``NO_CREDENTIALS`` fix names the first, and catalog rows carry the native candidate for the web
picker's "run with my own key" offer. The marketplace list is read only when the registry has no
entry and the vendor has a native provider. An uncurated ID typed in the marketplace spelling
under its native provider (``anthropic/claude-sonnet-4.5``) is sent directly — on a direct route
and as the 402 fallback, by the one rule ``_native_of_spelling`` — as the first curated native ID
of that reverse mapping; with none it is sent unchanged; either way the reason says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dexto._url import redact_url
from dexto.auth.credentials import NO_KEY_NEEDED, CredentialSnapshot, direct_fix_hint
from dexto.config.custom_models import CustomModel
from dexto.config.endpoints import DEFAULT_GATEWAY_URL, gateway_root
from dexto.errors import ConfigError, NoCredentialsError
from dexto.llm.mapping import (
    MappedId,
    NativeCandidate,
    has_native_provider,
    to_marketplace,
    to_native,
)
from dexto.llm.marketplace import MarketplaceCatalog
from dexto.llm.policy import RoutingPolicy
from dexto.llm.providers import INTERNAL_PROVIDER, Provider, get_provider
from dexto.llm.registry import Registry
from dexto.llm.selection import Selection, validate_model_id

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "Alternative",
    "FallbackPlan",
    "ProviderState",
    "Route",
    "RouteDecision",
    "RoutingContext",
    "RouteChoice",
    "choose_route",
    "decide",
    "direct_key_hint",
    "gateway_root",
    "model_state",
    "native_alternatives",
    "native_candidates",
    "not_runnable_fix",
    "provider_state",
    "resolve_route",
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
    base_url_from: str | None = None  # where base_url was set, for a fix (never shown in JSON)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "effectiveProvider": self.effective_provider,
            "effectiveModel": self.effective_model,
            "on": self.on,
        }


@dataclass(frozen=True, slots=True)
class Alternative:
    provider: str
    model: str
    route: Route
    credential_source: str
    verified: bool  # the native ID is curated (else derived from the list)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "route": self.route,
            "credentialSource": self.credential_source,
        }


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
    alternatives: tuple[Alternative, ...] = ()
    marketplace_source: str | None = None  # which list a lookup read: cache | bundled | live
    base_url_from: str | None = None  # where base_url was set, for a fix (never shown in JSON)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "route": self.route,
            "effectiveProvider": self.effective_provider,
            "effectiveModel": self.effective_model,
            "baseURL": redact_url(self.base_url) if self.base_url else self.base_url,
            "credentialSource": self.credential_source,
            "mappingVerified": self.mapping_verified,
            "fallback": self.fallback.to_json() if self.fallback else None,
            "reason": self.reason,
            "alternatives": [a.to_json() for a in self.alternatives],
            "marketplaceSource": self.marketplace_source,
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
            "credentialSources": {"dexto": self.can_route_via_dexto, "direct": self.has_direct_key},
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

    _custom_lower: dict[tuple[str, str], CustomModel] | None = None

    def marketplace(self) -> MarketplaceCatalog | None:
        if self._marketplace is None and self.marketplace_loader is not None:
            self._marketplace = self.marketplace_loader()
        return self._marketplace

    def loaded_marketplace(self) -> MarketplaceCatalog | None:
        """The marketplace list if a lookup has read it (never loads it)."""
        return self._marketplace

    def custom_model(self, provider: str, model: str) -> CustomModel | None:
        """The custom model ``provider/model``, looked up ignoring case."""
        hit = self.custom_models.get((provider, model))
        if hit is not None or not self.custom_models:
            return hit
        if self._custom_lower is None:
            self._custom_lower = {(p, n.lower()): m for (p, n), m in self.custom_models.items()}
        return self._custom_lower.get((provider, model.lower()))


def choose_route(p: Provider, has_dexto: bool, has_direct: bool, prefer: str) -> Route | None:
    """SPEC §6 steps 1, 3, 4 — the single rule for which route serves a provider."""
    if p.wire == "local":  # dexto has no runtime for GGUF files
        return None
    if not p.routeable:
        return "direct" if has_direct else None
    if has_dexto and (not has_direct or prefer == "dexto"):
        return "dexto"
    return "direct" if has_direct else None


def not_runnable_fix(p: Provider) -> str | None:
    """Why no credential can make ``p`` runnable, as a fix (None when credentials suffice)."""
    if p.wire == "local":
        return (
            "dexto cannot run GGUF files itself: serve the file with Ollama or llama.cpp's "
            "`llama-server -m FILE` and select ollama/<model> or openai-compatible/<model> "
            "(with `dexto models add --provider openai-compatible --base-url URL`)"
        )
    return None


@dataclass(frozen=True, slots=True)
class RouteChoice:
    route: Route | None
    has_dexto: bool
    direct_source: str | None
    custom: CustomModel | None


def resolve_route(p: Provider, model: str, ctx: RoutingContext) -> RouteChoice:
    """The route for ``p``/``model`` under ``ctx`` — used by ``decide`` and by every row."""
    custom = ctx.custom_model(p.id, model)
    direct_src = _direct_source(p, custom, ctx)
    has_dexto = ctx.credentials.has_dexto and p.routeable
    return RouteChoice(
        choose_route(p, has_dexto, direct_src is not None, ctx.policy.prefer),
        has_dexto,
        direct_src,
        custom,
    )


def provider_state(provider_id: str, ctx: RoutingContext) -> ProviderState:
    """The provider's own state (provider credentials only; rows may differ, see model_state)."""
    p = get_provider(provider_id)
    has_dexto = ctx.credentials.has_dexto and p.routeable
    has_direct = ctx.credentials.direct_source(provider_id) is not None
    return ProviderState(
        has_dexto, has_direct, choose_route(p, has_dexto, has_direct, ctx.policy.prefer)
    )


def model_state(provider_id: str, model: str, ctx: RoutingContext) -> ProviderState:
    """One catalog row's state: what ``decide`` would choose for ``provider_id/model``."""
    c = resolve_route(get_provider(provider_id), model, ctx)
    return ProviderState(c.has_dexto, c.direct_source is not None, c.route)


def _direct_source(p: Provider, custom: CustomModel | None, ctx: RoutingContext) -> str | None:
    if custom is not None:
        if custom.apiKeyEnv and ctx.env.get(custom.apiKeyEnv, "").strip():
            return f"env:{custom.apiKeyEnv}"
        if custom.apiKeyRef and custom.apiKeyRef in ctx.credentials.store_names:
            return f"auth-store:{custom.apiKeyRef}"
        if custom.apiKeyEnv or custom.apiKeyRef:  # the model names its key: never another
            return None
    return ctx.credentials.direct_source(p.id)


def _direct_base_url(
    p: Provider, custom: CustomModel | None, ctx: RoutingContext
) -> tuple[str | None, str | None]:
    """The direct endpoint's base URL, and where it was set in words for a fix (None: the
    provider's built-in URL)."""
    if custom is not None and custom.baseURL:
        return custom.baseURL, (
            f"the baseURL of custom model {p.id}/{custom.name} (replace it with `dexto models "
            f"add --provider {p.id} --name {custom.name} --base-url URL --replace`)"
        )
    if p.id in ctx.agent_base_urls:
        return ctx.agent_base_urls[p.id], "llm.baseURL in the agent file"
    from_env = p.base_url_env if ctx.env.get(p.base_url_env, "").strip() else None
    return p.resolve_base_url(ctx.env), from_env


def _named_key_var(p: Provider, custom: CustomModel | None, ctx: RoutingContext) -> str | None:
    """The variable the direct key must come from when the model or the agent names one (a
    custom model's ``apiKeyEnv``, the agent's ``$VAR`` reference that is not set)."""
    if custom is not None and custom.apiKeyEnv:
        return custom.apiKeyEnv
    return ctx.credentials.unresolved.get(p.id)


def direct_key_hint(provider_id: str, model: str, ctx: RoutingContext) -> str:
    """How to give ``provider_id/model`` the direct credential its route would read, in words:
    the variable it names (custom model, agent reference), its auth-store entry, or the
    provider's own variables."""
    p = get_provider(provider_id)
    custom = ctx.custom_model(p.id, model)
    var = _named_key_var(p, custom, ctx)
    if var:
        return f"set {var}"
    if custom is not None and custom.apiKeyRef:
        return (
            f"store its key again with `dexto models add --provider {p.id} --name "
            f"{custom.name} --api-key - --replace`"
        )
    return direct_fix_hint(p)


def _no_credentials(
    p: Provider, sel: Selection, custom: CustomModel | None, ctx: RoutingContext
) -> NoCredentialsError:
    var = _named_key_var(p, custom, ctx)
    if var:
        return NoCredentialsError(
            f"no credentials for {sel}: the {p.name} key is read from ${var}, which is not set",
            fix=f"export {var}=<your {p.name} key>, or change the reference to a variable "
            "that is set",
        )
    if custom is not None and custom.apiKeyRef:
        return NoCredentialsError(
            f"no credentials for {sel}: its key is the auth-store entry {custom.apiKeyRef}, "
            "which is missing",
            fix=f"store the key again: `dexto models add --provider {p.id} --name {sel.model} "
            "--api-key - --replace` (add the model's other flags, e.g. --base-url)",
        )
    hint = direct_fix_hint(p)
    if p.routeable:
        alts = native_alternatives(sel, ctx)
        own = "".join(
            f"; or run it on your own key as `{a.provider}/{a.model}` "
            f"(`dexto route {a.provider}/{a.model}`)"
            for a in alts[:1]
        )
        err = NoCredentialsError(
            f"no credentials for {sel}: not logged in to Dexto and no {p.name} key found",
            fix=f"run `dexto login` to use Dexto credits, or {hint}{own}",
        )
        err.alternatives = alts  # type: ignore[attr-defined]
        return err
    return NoCredentialsError(
        f"no credentials for {sel}: {p.name} is billed directly and no credential was found",
        fix=hint,
    )


def decide(selection: Selection, ctx: RoutingContext) -> RouteDecision:
    """Choose route, effective provider/model, credential source and fallback for a selection."""
    p = get_provider(selection.provider)
    model = validate_model_id(selection.model)
    choice = resolve_route(p, model, ctx)
    route, custom, direct_src, has_dexto = (
        choice.route,
        choice.custom,
        choice.direct_source,
        choice.has_dexto,
    )
    has_direct = direct_src is not None
    if route is None:
        fix = not_runnable_fix(p)
        if fix is not None:
            raise ConfigError(
                f"{selection} cannot be run: {p.name} models are not runnable by dexto",
                field="provider",
                fix=fix,
            )
        raise _no_credentials(p, selection, custom, ctx)
    info = ctx.registry.get(p.id, model)
    native = (
        custom.name
        if custom is not None and p.id != "openrouter"  # saved spelling
        else info.id
        if info is not None
        else model
    )  # lookups ignore case
    if route == "direct":
        assert direct_src is not None
        base, base_from = _direct_base_url(p, custom, ctx)
        if base is None and p.requires_base_url:
            raise ConfigError(
                f"{p.name} model {model!r} has no baseURL",
                field="baseURL",
                fix=f"add it with `dexto models add --provider {p.id} --name "
                f"{model} --base-url URL`",
            )
        spelled = info is None and custom is None and p.routeable and p.id != "openrouter"
        sent, why = native, ""
        if spelled:  # the same rule as the fallback below: the curated ID the provider knows
            mapped = to_marketplace(p.id, native, ctx.registry, ctx.marketplace())
            sent, why = _native_of_spelling(p, model, mapped, ctx)
        return RouteDecision(
            selection.provider,
            model,
            "direct",
            p.id,
            sent,
            base,
            direct_src,
            True,
            None,
            _direct_reason(p, direct_src, has_dexto, ctx) + (f" This call {why}" if why else ""),
            *_extras(selection, ctx, spelled),
            base_url_from=base_from,
        )
    mapped = to_marketplace(p.id, native, ctx.registry, ctx.marketplace() if info is None else None)
    fallback = None
    fb_note = ""
    if has_direct and ctx.policy.fallback_on_insufficient_credits:
        assert direct_src is not None
        fb_base, fb_from = _direct_base_url(p, custom, ctx)
        fb_model, fb_why = (
            _native_of_spelling(p, model, mapped, ctx)
            if info is None and custom is None
            else (native, "")
        )
        fb_note = f" If credits run out, the fallback {fb_why}" if fb_why else ""
        fallback = FallbackPlan(p.id, fb_model, direct_src, fb_base, base_url_from=fb_from)
    return RouteDecision(
        selection.provider,
        model,
        "dexto",
        INTERNAL_PROVIDER,
        mapped.id,
        gateway_root(ctx.env) + "/v1",
        ctx.credentials.dexto_source or "",
        mapped.verified,
        fallback,
        _dexto_reason(p, model, mapped, direct_src, ctx) + fb_note,
        *_extras(selection, ctx, info is None and p.id != "openrouter"),
        base_url_from="DEXTO_GATEWAY_URL",
    )


def _native_of_spelling(
    p: Provider, typed: str, mapped: MappedId, ctx: RoutingContext
) -> tuple[str, str]:
    """The model ID sent to ``p`` directly (the direct route, the 402 fallback) for an uncurated
    ``typed`` ID, and why, as a clause after "sends", when ``typed`` is the marketplace spelling
    (``mapped.id`` is ``vendor/typed``): the first curated native ID of ``p`` that reverse-maps
    from it (registry order, as alternatives and catalog rows pick), else ``typed`` unchanged."""
    if mapped.source == "passthrough":
        return typed, ""
    if mapped.id.partition("/")[2].lower() != typed.lower():
        return typed, ""
    ids = [c.model for c in native_candidates(mapped.id, ctx) if c.provider == p.id and c.verified]
    if ids:
        among = f" (the first of {len(ids)}: {', '.join(ids)})" if len(ids) > 1 else ""
        return ids[0], (
            f"sends {ids[0]}, the curated {p.name} ID for "
            f"{mapped.id}{among}: {typed} is the marketplace spelling."
        )
    if mapped.source != "catalog":
        return typed, ""
    return typed, (
        f"sends {typed} unchanged (unverified): it is the "
        f"marketplace spelling of {mapped.id} and no curated {p.name} ID maps to it."
    )


def _extras(
    selection: Selection, ctx: RoutingContext, mapped_by_list: bool
) -> tuple[tuple[Alternative, ...], str | None]:
    """The alternatives, and which marketplace list this decision's own lookups read."""
    alts: tuple[Alternative, ...] = ()
    read = mapped_by_list
    if selection.provider == "openrouter":
        alts = tuple(native_alternatives(selection, ctx))
        read = _reverse_reads_list(selection.model, ctx)
    if not read:
        return alts, None
    market = ctx.marketplace()
    return alts, market.source if market is not None and market.models else None


def _reverse_reads_list(marketplace_id: str, ctx: RoutingContext) -> bool:
    """Whether reverse-mapping the ID reads the marketplace list (no curated hit, native vendor)."""
    return not ctx.registry.by_marketplace_id(marketplace_id) and has_native_provider(
        marketplace_id
    )


def native_candidates(marketplace_id: str, ctx: RoutingContext) -> list[NativeCandidate]:
    """``to_native``, reading the marketplace list only when it can help."""
    if not _reverse_reads_list(marketplace_id, ctx):
        return to_native(marketplace_id, ctx.registry)  # curated hits, or none
    market = ctx.marketplace()
    if market is None or not market.models:
        return []
    key = ("native", marketplace_id)
    hit = market.recall(key)
    if hit is None:
        hit = market.remember(key, to_native(marketplace_id, ctx.registry, market))
    return list(hit)


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


def _dexto_reason(
    p: Provider, model: str, mapped: MappedId, direct_src: str | None, ctx: RoutingContext
) -> str:
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
    note = f" ({mapped.note})" if mapped.note else ""
    return text + f"; {model} is sent as {mapped.id} {_MAPPING_WORDS[mapped.source]}{note}."


def _direct_reason(p: Provider, src: str, has_dexto: bool, ctx: RoutingContext) -> str:
    who = "" if src == NO_KEY_NEEDED else f" with {src}"
    if not p.routeable:
        return (
            f"Routed directly to {p.name}{who}: it is billed by your own account and is "
            "never routed via Dexto."
        )
    if has_dexto:
        return (
            f"Routed directly to {p.name}{who} because the policy prefers your own key "
            f"({ctx.policy.source})."
        )
    return f"Routed directly to {p.name}{who} because you are not logged in to Dexto."
