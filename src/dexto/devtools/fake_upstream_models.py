"""The fake upstream's model list, entry for entry in OpenRouter's ``GET /api/v1/models`` shape."""

from __future__ import annotations

from typing import Any

__all__ = ["MODELS"]

_OPENAI_PARAMS = [
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "structured_outputs",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
]
_ANTHROPIC_PARAMS = [
    "include_reasoning",
    "max_tokens",
    "reasoning",
    "response_format",
    "stop",
    "structured_outputs",
    "temperature",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
]


def _model(
    model_id: str,
    name: str,
    created: int,
    description: str,
    context: int,
    max_out: int,
    pricing: dict[str, str],
    *,
    inputs: list[str],
    tokenizer: str,
    params: list[str],
    moderated: bool,
    hugging_face_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": model_id,
        "canonical_slug": model_id.removesuffix(":free"),
        "hugging_face_id": hugging_face_id,
        "name": name,
        "created": created,
        "description": description,
        "context_length": context,
        "architecture": {
            "modality": "+".join(inputs) + "->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": tokenizer,
            "instruct_type": None,
        },
        "pricing": pricing,
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": max_out,
            "is_moderated": moderated,
        },
        "per_request_limits": None,
        "supported_parameters": params,
        "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None},
        "knowledge_cutoff": None,
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }


MODELS: list[dict[str, Any]] = [
    _model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        1721260800,
        "GPT-4o mini is OpenAI's small, affordable multimodal model (text and image input).",
        128000,
        16384,
        {"prompt": "0.00000015", "completion": "0.0000006", "input_cache_read": "0.000000075"},
        inputs=["text", "image", "file"],
        tokenizer="GPT",
        params=_OPENAI_PARAMS,
        moderated=True,
    ),
    _model(
        "anthropic/claude-sonnet-4.5",
        "Anthropic: Claude Sonnet 4.5",
        1759161676,
        "Claude Sonnet 4.5 is Anthropic's model for coding and long-running agents.",
        1000000,
        64000,
        {
            "prompt": "0.000003",
            "completion": "0.000015",
            "input_cache_read": "0.0000003",
            "input_cache_write": "0.00000375",
        },
        inputs=["text", "image", "file"],
        tokenizer="Claude",
        params=_ANTHROPIC_PARAMS,
        moderated=False,
    ),
    _model(
        "fake/cheap",
        "Fake: Cheap",
        1700000000,
        "A deterministic test model served by `dexto dev fake-upstream`.",
        8192,
        1000,
        {"prompt": "0.000001", "completion": "0.000002"},
        inputs=["text"],
        tokenizer="Other",
        params=["max_tokens", "temperature", "tool_choice", "tools", "top_p"],
        moderated=False,
    ),
    _model(
        "z-ai/glm-4.5-air:free",
        "Z.AI: GLM 4.5 Air (free)",
        1753471258,
        "GLM-4.5-Air is the lightweight variant of Z.AI's GLM-4.5 family (free tier).",
        131072,
        96000,
        {"prompt": "0", "completion": "0"},
        inputs=["text"],
        tokenizer="Other",
        params=["include_reasoning", "max_tokens", "reasoning", "temperature", "tools", "top_p"],
        moderated=False,
        hugging_face_id="zai-org/GLM-4.5-Air",
    ),
]
