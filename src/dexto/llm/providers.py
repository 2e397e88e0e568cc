"""The provider table (SPEC §2) as data. Nothing else in dexto hard-codes a provider's facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "INTERNAL_PROVIDER",
    "PROVIDERS",
    "Provider",
    "Wire",
    "canonical_provider_id",
    "get_provider",
]

Wire = Literal["openai", "anthropic", "google", "cohere", "bedrock", "vertex", "local"]

#: The effective provider of the gateway route. Never user-selectable, never listed.
INTERNAL_PROVIDER = "dexto"


@dataclass(frozen=True, slots=True, kw_only=True)
class Provider:
    """One row of the provider table; every field is named where the row is written."""

    id: str
    name: str
    wire: Wire
    routeable: bool  # can be served through the Dexto gateway
    env_vars: tuple[str, ...]  # credential variables, first is canonical, rest are aliases
    base_url: str | None  # default API root for direct calls
    custom_models: bool  # users may add their own models for this provider
    requires_key: bool  # a direct call needs a credential
    requires_base_url: bool = False  # custom models must carry a baseURL
    cloud_chain: bool = False  # credentials come from the cloud SDK's chain, not a pasted key
    marketplace_vendor: str | None = None  # OpenRouter vendor prefix for step 3 of §3
    key_example: str | None = None  # how the provider's API keys begin, e.g. "sk-ant-…"

    @property
    def base_url_env(self) -> str:
        """The env var overriding the direct base URL, e.g. ``ANTHROPIC_BASE_URL``."""
        return self.id.upper().replace("-", "_") + "_BASE_URL"

    def resolve_base_url(self, env: Mapping[str, str]) -> str | None:
        override = env.get(self.base_url_env, "").strip()
        return override.rstrip("/") if override else self.base_url


_TABLE: tuple[Provider, ...] = (
    Provider(
        id="anthropic",
        name="Anthropic",
        wire="anthropic",
        routeable=True,
        env_vars=("ANTHROPIC_API_KEY",),
        base_url="https://api.anthropic.com/v1",
        custom_models=False,
        requires_key=True,
        marketplace_vendor="anthropic",
        key_example="sk-ant-…",
    ),
    Provider(
        id="openai",
        name="OpenAI",
        wire="openai",
        routeable=True,
        env_vars=("OPENAI_API_KEY",),
        base_url="https://api.openai.com/v1",
        custom_models=False,
        requires_key=True,
        marketplace_vendor="openai",
        key_example="sk-…",
    ),
    Provider(
        id="google",
        name="Google",
        wire="google",
        routeable=True,
        env_vars=("GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"),
        base_url="https://generativelanguage.googleapis.com/v1beta",
        custom_models=False,
        requires_key=True,
        marketplace_vendor="google",
        key_example="AIza…",
    ),
    Provider(
        id="groq",
        name="Groq",
        wire="openai",
        routeable=True,
        env_vars=("GROQ_API_KEY",),
        base_url="https://api.groq.com/openai/v1",
        custom_models=False,
        requires_key=True,
        key_example="gsk_…",
    ),
    Provider(
        id="xai",
        name="xAI",
        wire="openai",
        routeable=True,
        env_vars=("XAI_API_KEY",),
        base_url="https://api.x.ai/v1",
        custom_models=False,
        requires_key=True,
        marketplace_vendor="x-ai",
        key_example="xai-…",
    ),
    Provider(
        id="cohere",
        name="Cohere",
        wire="cohere",
        routeable=True,
        env_vars=("COHERE_API_KEY",),
        base_url="https://api.cohere.com/v2",
        custom_models=False,
        requires_key=True,
        marketplace_vendor="cohere",
    ),
    Provider(
        id="openrouter",
        name="OpenRouter",
        wire="openai",
        routeable=True,
        env_vars=("OPENROUTER_API_KEY",),
        base_url="https://openrouter.ai/api/v1",
        custom_models=True,
        requires_key=True,
        key_example="sk-or-…",
    ),
    Provider(
        id="bedrock",
        name="Amazon Bedrock",
        wire="bedrock",
        routeable=False,
        env_vars=("AWS_ACCESS_KEY_ID",),
        base_url=None,
        custom_models=True,
        requires_key=True,
        cloud_chain=True,
    ),
    Provider(
        id="vertex",
        name="Google Vertex AI",
        wire="vertex",
        routeable=False,
        env_vars=("GOOGLE_VERTEX_PROJECT",),
        base_url=None,
        custom_models=True,
        requires_key=True,
        cloud_chain=True,
    ),
    Provider(
        id="ollama",
        name="Ollama",
        wire="openai",
        routeable=False,
        env_vars=(),
        base_url="http://localhost:11434/v1",
        custom_models=True,
        requires_key=False,
    ),
    Provider(
        id="local",
        name="Local (GGUF)",
        wire="local",
        routeable=False,
        env_vars=(),
        base_url=None,
        custom_models=True,
        requires_key=False,
    ),
    Provider(
        id="openai-compatible",
        name="OpenAI-compatible",
        wire="openai",
        routeable=False,
        env_vars=(),
        base_url=None,
        custom_models=True,
        requires_key=False,
        requires_base_url=True,
    ),
    Provider(
        id="litellm",
        name="LiteLLM",
        wire="openai",
        routeable=False,
        env_vars=("LITELLM_API_KEY",),
        base_url=None,
        custom_models=True,
        requires_key=False,
        requires_base_url=True,
        key_example="sk-…",
    ),
    Provider(
        id="glama",
        name="Glama",
        wire="openai",
        routeable=False,
        env_vars=("GLAMA_API_KEY",),
        base_url="https://glama.ai/api/gateway/openai/v1",
        custom_models=True,
        requires_key=True,
    ),
)

PROVIDERS: Mapping[str, Provider] = {p.id: p for p in _TABLE}


def canonical_provider_id(provider_id: str) -> str:
    """The table's spelling of a provider ID typed in any case: ``OpenAI`` → ``openai``.

    Provider IDs are matched ignoring ASCII case; model IDs are not (they go upstream as
    typed). Text with non-ASCII characters is returned unchanged, so no look-alike (the
    Kelvin sign lower-cases to ``k``) matches a provider.
    """
    return provider_id.lower() if provider_id.isascii() else provider_id


def get_provider(provider_id: str) -> Provider:
    """Return the provider, matched ignoring case, or raise the typed error (``dexto`` is
    refused by name in any case). ``.id`` of the answer is the canonical ID."""
    from dexto.errors import ProviderNotAllowedError, UnknownProviderError

    canonical = canonical_provider_id(provider_id)
    p = PROVIDERS.get(canonical)
    if p is not None:
        return p
    if canonical == INTERNAL_PROVIDER:
        raise ProviderNotAllowedError(
            "provider 'dexto' cannot be selected",
            fix="choose the real provider, e.g. anthropic, and log in with `dexto login`; "
            "routing via Dexto is automatic",
            field="provider",
        )
    raise UnknownProviderError(
        f"unknown provider {provider_id!r}",
        fix=unknown_provider_fix(provider_id),
        field="provider",
    )


def unknown_provider_fix(provider_id: str) -> str:
    """``did you mean 'anthropic'? …`` (closest known IDs, ignoring case), then the full list."""
    from difflib import get_close_matches

    known = [p for p in PROVIDERS if p != INTERNAL_PROVIDER]
    close = get_close_matches(canonical_provider_id(provider_id), known, n=2, cutoff=0.6)
    hint = "did you mean " + " or ".join(repr(c) for c in close) + "? " if close else ""
    return hint + "use one of: " + ", ".join(known)
