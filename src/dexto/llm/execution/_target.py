"""Where one attempt goes: wire protocol, endpoint, model ID and credential (internal)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dexto._secret import Secret
from dexto.llm.providers import INTERNAL_PROVIDER

__all__ = ["HttpCall", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    wire: str  # "openai" | "anthropic" | "google" | "cohere" | "bedrock" | "vertex"
    provider: str  # the effective provider ("dexto" for the gateway)
    model: str  # the effective model ID, sent as is
    base_url: str | None
    secret: Secret | None
    credential_source: str  # a name only, e.g. "env:ANTHROPIC_API_KEY"
    label: str  # for messages: "the Dexto gateway", "Anthropic"
    headers: Mapping[str, str] = field(default_factory=dict)
    base_url_from: str | None = None  # where base_url was set, e.g. "DEXTO_GATEWAY_URL"

    @property
    def is_gateway(self) -> bool:
        return self.provider == INTERNAL_PROVIDER

    def key(self) -> str:
        return self.secret.reveal() if self.secret is not None else ""


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One HTTP request, built by an adapter without doing any I/O."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    warnings: tuple[str, ...] = ()  # added to the result's warnings (e.g. dropped parameters)
