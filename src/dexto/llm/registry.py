"""The curated model registry (SPEC §8.1), loaded once from ``registry_data.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "Capabilities",
    "ModelInfo",
    "Pricing",
    "Registry",
    "load_registry",
]


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per million tokens."""

    input_per_m: float | None = None
    output_per_m: float | None = None
    cache_read_per_m: float | None = None
    cache_write_per_m: float | None = None

    def to_json(self) -> dict[str, float]:
        out = {
            "inputPerM": self.input_per_m,
            "outputPerM": self.output_per_m,
            "cacheReadPerM": self.cache_read_per_m,
            "cacheWritePerM": self.cache_write_per_m,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    vision: bool = False
    reasoning: bool = False
    file_types: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tools": self.tools,
            "vision": self.vision,
            "reasoning": self.reasoning,
            "fileTypes": list(self.file_types),
        }


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    id: str
    display_name: str
    marketplace_id: str | None
    context_window: int | None
    max_output_tokens: int | None
    pricing: Pricing = field(default_factory=Pricing)
    capabilities: Capabilities = field(default_factory=Capabilities)
    featured: bool = False
    default: bool = False


class Registry:
    """Curated models by provider, with both lookup directions."""

    def __init__(self, models: list[ModelInfo]) -> None:
        self._by_provider: dict[str, list[ModelInfo]] = {}
        self._by_key: dict[tuple[str, str], ModelInfo] = {}  # (provider, id lower-cased)
        self._by_marketplace: dict[str, list[ModelInfo]] = {}
        for m in models:
            self._by_provider.setdefault(m.provider, []).append(m)
            self._by_key[(m.provider, m.id.lower())] = m
            if m.marketplace_id:
                self._by_marketplace.setdefault(m.marketplace_id.lower(), []).append(m)

    def providers(self) -> list[str]:
        return list(self._by_provider)

    def models(self, provider: str) -> list[ModelInfo]:
        return list(self._by_provider.get(provider, ()))

    def all(self) -> list[ModelInfo]:
        return [m for ms in self._by_provider.values() for m in ms]

    def get(self, provider: str, model_id: str) -> ModelInfo | None:
        """The curated model, looked up ignoring case."""
        return self._by_key.get((provider, model_id.lower()))

    def default(self, provider: str) -> ModelInfo | None:
        return next((m for m in self._by_provider.get(provider, ()) if m.default), None)

    def by_marketplace_id(self, marketplace_id: str) -> list[ModelInfo]:
        return list(self._by_marketplace.get(marketplace_id.lower(), ()))


def _model_from_json(provider: str, default_id: str, raw: Mapping[str, Any]) -> ModelInfo:
    pr = raw.get("pricing") or {}
    caps = raw.get("capabilities") or {}
    return ModelInfo(
        provider=provider,
        id=raw["id"],
        display_name=raw.get("displayName") or raw["id"],
        marketplace_id=raw.get("marketplaceId"),
        context_window=raw.get("contextWindow"),
        max_output_tokens=raw.get("maxOutputTokens"),
        pricing=Pricing(
            pr.get("inputPerM"),
            pr.get("outputPerM"),
            pr.get("cacheReadPerM"),
            pr.get("cacheWritePerM"),
        ),
        capabilities=Capabilities(
            tools=bool(caps.get("tools", True)),
            vision=bool(caps.get("vision", False)),
            reasoning=bool(caps.get("reasoning", False)),
            file_types=tuple(caps.get("fileTypes", ())),
        ),
        featured=bool(raw.get("featured", False)),
        default=raw["id"] == default_id,
    )


@cache
def load_registry() -> Registry:
    """The bundled registry (parsed once per process)."""
    text = resources.files("dexto.llm").joinpath("registry_data.json").read_text("utf-8")
    data = json.loads(text)
    models = [
        _model_from_json(pid, pdata.get("default", ""), raw)
        for pid, pdata in data["providers"].items()
        for raw in pdata["models"]
    ]
    return Registry(models)
