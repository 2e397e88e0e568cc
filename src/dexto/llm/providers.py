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
    "get_provider",
    "is_known_provider",
]

Wire = Literal["openai", "anthropic", "google", "cohere", "bedrock", "vertex", "local"]

#: The effective provider of the gateway route. Never user-selectable, never listed.
INTERNAL_PROVIDER = "dexto"


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    name: str
    routeable: bool  # can be served through the Dexto gateway
    env_vars: tuple[str, ...]  # credential variables, first is canonical, rest are aliases
    base_url: str | None  # default API root for direct calls
    wire: Wire
    custom_models: bool  # users may add their own models for this provider
    requires_key: bool  # a direct call needs a credential
    requires_base_url: bool = False  # custom models must carry a baseURL
    marketplace_vendor: str | None = None  # OpenRouter vendor prefix for step 3 of §3
    extra_env: tuple[str, ...] = ()  # further variables that must be present (e.g. region)

    @property
    def base_url_env(self) -> str:
        """The env var overriding the direct base URL, e.g. ``ANTHROPIC_BASE_URL``."""
        return self.id.upper().replace("-", "_") + "_BASE_URL"

    @property
    def direct_only(self) -> bool:
        return not self.routeable

    def resolve_base_url(self, env: Mapping[str, str]) -> str | None:
        override = env.get(self.base_url_env, "").strip()
        return override.rstrip("/") if override else self.base_url


_TABLE: tuple[Provider, ...] = (
    Provider("anthropic", "Anthropic", True, ("ANTHROPIC_API_KEY",),
             "https://api.anthropic.com/v1", "anthropic", False, True,
             marketplace_vendor="anthropic"),
    Provider("openai", "OpenAI", True, ("OPENAI_API_KEY",),
             "https://api.openai.com/v1", "openai", False, True, marketplace_vendor="openai"),
    Provider("google", "Google", True,
             ("GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"),
             "https://generativelanguage.googleapis.com/v1beta", "google", False, True,
             marketplace_vendor="google"),
    Provider("groq", "Groq", True, ("GROQ_API_KEY",),
             "https://api.groq.com/openai/v1", "openai", False, True),
    Provider("xai", "xAI", True, ("XAI_API_KEY",),
             "https://api.x.ai/v1", "openai", False, True, marketplace_vendor="x-ai"),
    Provider("cohere", "Cohere", True, ("COHERE_API_KEY",),
             "https://api.cohere.com/v2", "cohere", False, True, marketplace_vendor="cohere"),
    Provider("openrouter", "OpenRouter", True, ("OPENROUTER_API_KEY",),
             "https://openrouter.ai/api/v1", "openai", True, True),
    Provider("bedrock", "Amazon Bedrock", False, ("AWS_ACCESS_KEY_ID",),
             None, "bedrock", True, True, extra_env=("AWS_REGION",)),
    Provider("vertex", "Google Vertex AI", False, ("GOOGLE_VERTEX_PROJECT",),
             None, "vertex", True, True),
    Provider("ollama", "Ollama", False, (), "http://localhost:11434/v1", "openai", True, False),
    Provider("local", "Local (GGUF)", False, (), None, "local", True, False),
    Provider("openai-compatible", "OpenAI-compatible", False, (), None, "openai", True, False,
             requires_base_url=True),
    Provider("litellm", "LiteLLM", False, ("LITELLM_API_KEY",), None, "openai", True, False,
             requires_base_url=True),
    Provider("glama", "Glama", False, ("GLAMA_API_KEY",),
             "https://glama.ai/api/gateway/openai/v1", "openai", True, True),
)

PROVIDERS: Mapping[str, Provider] = {p.id: p for p in _TABLE}


def is_known_provider(provider_id: str) -> bool:
    return provider_id in PROVIDERS


def get_provider(provider_id: str) -> Provider:
    """Return the provider or raise the typed error (``dexto`` is refused by name)."""
    from dexto.errors import ProviderNotAllowedError, UnknownProviderError

    p = PROVIDERS.get(provider_id)
    if p is not None:
        return p
    if provider_id == INTERNAL_PROVIDER:
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
    close = get_close_matches(provider_id.lower(), known, n=2, cutoff=0.6)
    hint = "did you mean " + " or ".join(repr(c) for c in close) + "? " if close else ""
    return hint + "use one of: " + ", ".join(known)
