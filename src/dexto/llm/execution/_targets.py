"""Decision → targets: the primary attempt and the 402 fallback, with their secrets.

Secrets are looked up by the decision's credential *source name*, so the request uses exactly
the credential the decision explained ("env:ANTHROPIC_API_KEY", "auth-store:dexto", …).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dexto._secret import Secret
from dexto._version import __version__
from dexto.auth.credentials import check_sendable
from dexto.auth.store import Entry, entry_secret
from dexto.errors import AuthFailedError, ConfigError, DextoError
from dexto.llm.execution._target import Target
from dexto.llm.providers import get_provider
from dexto.llm.routing import RouteDecision

__all__ = [
    "UnusableFallback",
    "fallback_target",
    "gateway_headers",
    "primary_target",
    "secret_for",
    "usable_fallback",
]

StoreLoader = Callable[[str], Entry | None]  # auth-store lookup by entry name


def secret_for(source: str, env: Mapping[str, str], store: StoreLoader) -> Secret | None:
    """The secret behind a source name; None for key-less providers and cloud chains.

    A key that cannot be sent in an HTTP header is a ConfigError naming the source."""
    if source.startswith("env:"):
        name = source[4:]
        if "+" in name:  # cloud credential chains (bedrock, vertex) are read by their SDKs
            return None
        value = env.get(name, "").strip()
    elif source.startswith("auth-store:"):
        entry = store(source[len("auth-store:") :])
        value = entry_secret(entry) if entry is not None else ""
    else:
        return None
    if not value:
        return None
    check_sendable(value, source)
    return Secret(value)


def gateway_headers(session_id: str, source: str) -> dict[str, str]:
    return {
        "x-dexto-session-id": session_id,
        "x-dexto-source": source,
        "x-dexto-version": __version__,
    }


def _direct(
    provider_id: str,
    model: str,
    base_url: str | None,
    source: str,
    env: Mapping[str, str],
    store: StoreLoader,
    base_url_from: str | None = None,
) -> Target:
    p = get_provider(provider_id)
    if p.wire == "local":
        raise ConfigError(
            f"{p.name} models cannot be run by the dexto client",
            field="provider",
            fix="serve the GGUF file with ollama or llama.cpp's server and select "
            "ollama/<model> or openai-compatible/<model>",
        )
    return Target(
        p.wire,
        p.id,
        model,
        base_url,
        secret_for(source, env, store),
        source,
        p.name,
        base_url_from=base_url_from,
    )


def primary_target(
    d: RouteDecision, env: Mapping[str, str], store: StoreLoader, headers: Mapping[str, str]
) -> Target:
    if d.route == "dexto":
        return Target(
            "openai",
            d.effective_provider,
            d.effective_model,
            d.base_url,
            secret_for(d.credential_source, env, store),
            d.credential_source,
            "the Dexto gateway",
            dict(headers),
            d.base_url_from,
        )
    return _direct(
        d.effective_provider,
        d.effective_model,
        d.base_url,
        d.credential_source,
        env,
        store,
        d.base_url_from,
    )


def fallback_target(d: RouteDecision, env: Mapping[str, str], store: StoreLoader) -> Target | None:
    fb = d.fallback
    if fb is None:
        return None
    return _direct(
        fb.effective_provider,
        fb.effective_model,
        fb.base_url,
        fb.credential_source,
        env,
        store,
        fb.base_url_from,
    )


@dataclass(frozen=True, slots=True)
class UnusableFallback:
    """A fallback whose key cannot be used: the error for a 402 and the warning for a paid call."""

    error: DextoError
    warning: str


def usable_fallback(
    d: RouteDecision, env: Mapping[str, str], store: StoreLoader
) -> Target | UnusableFallback | None:
    """``fallback_target``, or an ``UnusableFallback`` instead of the dexto error its key lookup
    raised (a key that cannot be sent, an OAuth token that cannot be refreshed, an unreadable
    auth store): the key is needed only if the gateway answers 402."""
    try:
        return fallback_target(d, env, store)
    except DextoError as err:
        source = d.fallback.credential_source if d.fallback is not None else ""
        problem = err.message if source in err.message else f"{source}: {err.message}"
        fix = err.fix or f"fix {source}"
        # a refused OAuth refresh stays AUTH_FAILED on the 402; every other problem is config
        cls = AuthFailedError if isinstance(err, AuthFailedError) else ConfigError
        error = cls(
            f"Dexto credits ran out and the fallback key cannot be used: {problem}",
            fix=f"{fix}, or top up your Dexto credits",
        )
        return UnusableFallback(
            error,
            f"{problem}; when Dexto credits run out, requests stop instead of continuing "
            f"with this key — {fix}",
        )
