"""Wire adapters: one per protocol, each a pure request builder and reply/stream parser."""

from __future__ import annotations

from dexto.llm.execution.adapters._base import Adapter, StreamParser

__all__ = ["Adapter", "StreamParser", "adapter_for"]

_CACHE: dict[str, Adapter] = {}


def adapter_for(wire: str) -> Adapter:
    """The adapter for a wire protocol (imported on first use, so start-up stays small)."""
    hit = _CACHE.get(wire)
    if hit is not None:
        return hit
    adapter: Adapter
    if wire == "openai":
        from dexto.llm.execution.adapters.openai import OpenAIAdapter

        adapter = OpenAIAdapter()
    elif wire == "anthropic":
        from dexto.llm.execution.adapters.anthropic import AnthropicAdapter

        adapter = AnthropicAdapter()
    elif wire in ("google", "vertex"):
        from dexto.llm.execution.adapters.google import GoogleAdapter

        adapter = GoogleAdapter()
    elif wire == "cohere":
        from dexto.llm.execution.adapters.cohere import CohereAdapter

        adapter = CohereAdapter()
    elif wire == "bedrock":
        from dexto.llm.execution.adapters.bedrock import BedrockAdapter

        adapter = BedrockAdapter()
    else:
        raise ValueError(f"no adapter for wire protocol {wire!r}")
    _CACHE[wire] = adapter
    return adapter
