"""The one ordered credential lookup (SPEC §4).

For a provider, first hit wins:
  1. an explicit override — a ``$VAR`` reference from the agent config or the request; when the
     variable is unset there is no credential (never a silent fall-through to another key);
  2. the provider's environment variables, canonical name first, then aliases;
  3. the auth store entry named after the provider.
For the Dexto key: ``DEXTO_API_KEY``, then the auth store entry ``dexto``.
Cloud providers use their credential chains: bedrock needs AWS keys (or a profile or a Bedrock
bearer token) plus a region; vertex needs ``GOOGLE_VERTEX_PROJECT`` (ADC is found by the SDK).
Providers that need no key (ollama, local, openai-compatible, litellm without a key) are satisfied.

Only *source names* leave this module in public values ("env:ANTHROPIC_API_KEY",
"auth-store:dexto"); the secret is wrapped in ``Secret``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dexto._secret import Secret, is_sendable
from dexto.auth.store import ApiEntry, OAuthEntry, WellKnownEntry, entry_secret
from dexto.errors import ConfigError
from dexto.llm.providers import PROVIDERS, Provider

__all__ = [
    "DEXTO_KEY_ENV",
    "accepts_pasted_key",
    "check_sendable",
    "NO_KEY_NEEDED",
    "Credential",
    "CredentialSnapshot",
    "direct_credential",
    "dexto_credential",
    "direct_fix_hint",
    "reference_name",
    "resolve_reference",
]

DEXTO_KEY_ENV = "DEXTO_API_KEY"
NO_KEY_NEEDED = "none-required"
Store = Mapping[str, ApiEntry | OAuthEntry | WellKnownEntry]


@dataclass(frozen=True, slots=True)
class Credential:
    source: str  # a name only, safe to show
    secret: Secret | None  # None when no secret is needed (cloud chains, key-less providers)


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _resend_fix(source: str) -> str:
    if source.startswith("env:"):
        return f"set {source[4:]} to the key exactly as the provider shows it, or unset it"
    if source.startswith("auth-store:"):
        name = source[len("auth-store:") :]
        if name == "dexto":
            return "run `dexto login` again"
        if name.startswith("custom-"):
            return (
                "re-add the model with `dexto models add … --api-key KEY --replace`, pasting "
                "the whole key"
            )
        return f"run `dexto auth set {name}` again, pasting the whole key"
    return "pass the key exactly as the provider shows it"


def check_sendable(value: str, source: str) -> None:
    """Raise a ConfigError naming ``source`` (never the key) when the key cannot be sent in an
    HTTP header: non-ASCII (e.g. a '…' from a shortened copy), spaces or control characters."""
    if not is_sendable(value):
        raise ConfigError(
            "the API key contains spaces, control characters or non-ASCII characters (such "
            "as '…' from a shortened copy)",
            field=source,
            fix=_resend_fix(source),
        )


def reference_name(ref: str) -> str:
    """``$VAR`` / ``${VAR}`` / ``VAR`` → ``VAR``."""
    return ref.strip().removeprefix("$").removeprefix("{").removesuffix("}")


def resolve_reference(ref: str, env: Mapping[str, str]) -> Credential | None:
    """Resolve a ``$VAR`` (or ``${VAR}``) reference from the environment."""
    name = reference_name(ref)
    value = _env(env, name)
    return Credential(f"env:{name}", Secret(value)) if value else None


def _store_credential(store: Store, name: str) -> Credential | None:
    entry = store.get(name)
    if entry is None:
        return None
    return Credential(f"auth-store:{name}", Secret(entry_secret(entry)))


def dexto_credential(env: Mapping[str, str], store: Store) -> Credential | None:
    value = _env(env, DEXTO_KEY_ENV)
    if value:
        return Credential(f"env:{DEXTO_KEY_ENV}", Secret(value))
    return _store_credential(store, "dexto")


def _bedrock(env: Mapping[str, str]) -> Credential | None:
    region = next((n for n in ("AWS_REGION", "AWS_DEFAULT_REGION") if _env(env, n)), None)
    if region is None:
        return None
    if _env(env, "AWS_BEARER_TOKEN_BEDROCK"):
        return Credential(f"env:AWS_BEARER_TOKEN_BEDROCK+{region}", None)
    if _env(env, "AWS_ACCESS_KEY_ID") and _env(env, "AWS_SECRET_ACCESS_KEY"):
        return Credential(f"env:AWS_ACCESS_KEY_ID+{region}", None)
    if _env(env, "AWS_PROFILE"):
        return Credential(f"env:AWS_PROFILE+{region}", None)
    return None


def direct_credential(
    provider: Provider, env: Mapping[str, str], store: Store, override: str | None = None
) -> Credential | None:
    """The direct credential for ``provider`` by the documented order, or None.

    With ``override`` (a ``$VAR`` reference) only that variable is used.
    """
    if override:
        return resolve_reference(override, env)
    if provider.id == "bedrock":
        return _bedrock(env)
    if provider.id == "vertex":
        return (
            Credential("env:GOOGLE_VERTEX_PROJECT+adc", None)
            if _env(env, "GOOGLE_VERTEX_PROJECT")
            else None
        )
    for name in provider.env_vars:
        value = _env(env, name)
        if value:
            return Credential(f"env:{name}", Secret(value))
    hit = _store_credential(store, provider.id)
    if hit is not None:
        return hit
    if not provider.requires_key:
        return Credential(NO_KEY_NEEDED, None)
    return None


def accepts_pasted_key(provider: Provider) -> bool:
    """Whether a key the user pastes (stored as the auth-store entry named after ``provider``) is
    a credential for it: the provider takes an API key (it names a key variable — optional for
    litellm) and does not use a cloud credential chain."""
    return bool(provider.env_vars) and not provider.cloud_chain


def direct_fix_hint(provider: Provider) -> str:
    """How a user gives ``provider`` a direct credential, in words."""
    if provider.id == "bedrock":
        return "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and AWS_REGION"
    if provider.id == "vertex":
        return "set GOOGLE_VERTEX_PROJECT and configure Google application default credentials"
    if provider.env_vars:
        return f"set {provider.env_vars[0]} or run `dexto auth set {provider.id}`"
    return "no key is needed"


@dataclass(frozen=True, slots=True)
class CredentialSnapshot:
    """Which credential sources exist right now, by name only; the input to the decision."""

    dexto_source: str | None
    direct_sources: Mapping[str, str | None]
    store_names: frozenset[str] = frozenset()
    #: provider id → the variable its ``$VAR`` override names, when that variable is unset
    unresolved: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_dexto(self) -> bool:
        return self.dexto_source is not None

    def direct_source(self, provider_id: str) -> str | None:
        return self.direct_sources.get(provider_id)

    @classmethod
    def build(
        cls,
        env: Mapping[str, str],
        store: Store,
        overrides: Mapping[str, str] | None = None,
    ) -> CredentialSnapshot:
        overrides = overrides or {}
        dexto = dexto_credential(env, store)
        direct: dict[str, str | None] = {}
        unresolved: dict[str, str] = {}
        for pid, p in PROVIDERS.items():
            cred = direct_credential(p, env, store, overrides.get(pid))
            direct[pid] = cred.source if cred else None
            if cred is None and overrides.get(pid):
                unresolved[pid] = reference_name(overrides[pid])
        return cls(dexto.source if dexto else None, direct, frozenset(store), unresolved)
