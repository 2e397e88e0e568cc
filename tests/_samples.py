"""Small OpenRouter-shaped model lists made for tests (not copied from any real list)."""

from __future__ import annotations

from typing import Any


def row(
    mid: str,
    slug: str | None = None,
    *,
    name: str | None = None,
    ctx: int = 128000,
    prompt: str = "0.000001",
    completion: str = "0.000002",
    tools: bool = True,
    image: bool = False,
) -> dict[str, Any]:
    return {
        "id": mid,
        "canonical_slug": slug or mid,
        "name": name or mid,
        "context_length": ctx,
        "pricing": {"prompt": prompt, "completion": completion},
        "architecture": {"input_modalities": ["text", "image"] if image else ["text"]},
        "top_provider": {"context_length": ctx, "max_completion_tokens": 8192},
        "supported_parameters": ["tools", "max_tokens"] if tools else ["max_tokens"],
    }


SAMPLE_ROWS: list[dict[str, Any]] = [
    row(
        "anthropic/claude-sonnet-4.5",
        "anthropic/claude-4.5-sonnet-20250929",
        name="Anthropic: Claude Sonnet 4.5",
        prompt="0.000003",
        completion="0.000015",
        image=True,
    ),
    row(
        "anthropic/claude-opus-4.1",
        "anthropic/claude-4.1-opus-20250805",
        name="Anthropic: Claude Opus 4.1",
        prompt="0.000015",
        completion="0.000075",
    ),
    row(
        "anthropic/claude-opus-9",
        "anthropic/claude-9-opus-20300101",
        name="Anthropic: Claude Opus 9 (future)",
    ),
    row("cohere/command-a", "cohere/command-a-03-2025", name="Cohere: Command A"),
    row("cohere/command-z", "cohere/command-z-11-2031", name="Cohere: Command Z"),
    row("google/gemini-2.0-flash-001", name="Google: Gemini 2.0 Flash"),
    row(
        "meta-llama/llama-4-scout",
        "meta-llama/llama-4-scout-17b-16e-instruct",
        name="Meta: Llama 4 Scout",
    ),
    row("openai/gpt-oss-120b", name="OpenAI: gpt-oss-120b"),
    row("qwen/qwen9-coder", "qwen/qwen9-coder-480b-a35b", name="Qwen: Qwen9 Coder"),
    row("x-ai/grok-7", "x-ai/grok-7-20301201", name="xAI: Grok 7"),
    row("z-ai/glm-4.5-air", name="Z.AI: GLM 4.5 Air"),
    row(
        "z-ai/glm-4.5-air:free",
        "z-ai/glm-4.5-air",
        name="Z.AI: GLM 4.5 Air (free)",
        prompt="0",
        completion="0",
    ),
]


def synthetic_rows(n: int) -> list[dict[str, Any]]:
    """``n`` distinct marketplace rows (for size and speed tests)."""
    vendors = ["acme", "zeta", "nova", "orbit", "delta"]
    return [
        row(f"{vendors[i % 5]}/model-{i}", f"{vendors[i % 5]}/model-{i}-2026{i % 12 + 1:02d}01")
        for i in range(n)
    ]
