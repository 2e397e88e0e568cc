"""The admission guard estimate (the hold) and the actual cost of a request.

Guard estimate G, in micro-USD, rounded up::

    G = max(min_hold, P_req + B * P_in + C * P_out)

where ``B`` is the request body size in bytes (an upper bound on prompt tokens: every token
covers at least one byte of the JSON that carries it), ``C`` is the request's
``max_completion_tokens`` / ``max_tokens`` if set, else ``min(default_max_tokens, the model's
listed max completion tokens)``, and ``P_req``, ``P_in``, ``P_out`` are the model's listed
per-request, per-prompt-token and per-completion-token prices. A model with no listed price gets
``max(min_hold, unknown_model_hold)``.

Cost: the upstream's ``usage.cost`` (USD) when present, else ``prompt_tokens * P_in +
completion_tokens * P_out + P_req``; rounded up to the micro-dollar.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from dexto.gateway.money import ceil_micros

__all__ = ["ModelPrice", "cost_from_usage", "estimate_tokens_cost", "guard_estimate", "parse_price"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    prompt: Decimal  # USD per prompt token
    completion: Decimal  # USD per completion token
    request: Decimal = Decimal(0)  # USD per request
    max_completion_tokens: int | None = None


def _dec(value: Any) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return d if d.is_finite() and d > 0 else Decimal(0)


def parse_price(entry: dict[str, Any]) -> ModelPrice | None:
    """An OpenRouter model-list entry → its price (None when it lists none)."""
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict) or "prompt" not in pricing or "completion" not in pricing:
        return None
    top = entry.get("top_provider")
    max_c = top.get("max_completion_tokens") if isinstance(top, dict) else None
    return ModelPrice(
        prompt=_dec(pricing.get("prompt")),
        completion=_dec(pricing.get("completion")),
        request=_dec(pricing.get("request", 0)),
        max_completion_tokens=max_c if isinstance(max_c, int) and max_c > 0 else None,
    )


def guard_estimate(
    body_bytes: int,
    max_tokens: int | None,
    price: ModelPrice | None,
    *,
    min_hold: int,
    default_max_tokens: int,
    unknown_model_hold: int,
) -> int:
    if price is None:
        return max(min_hold, unknown_model_hold, 1)
    if max_tokens is not None and max_tokens > 0:
        completion = max_tokens
    else:
        completion = default_max_tokens
        if price.max_completion_tokens:
            completion = min(completion, price.max_completion_tokens)
    usd = price.request + body_bytes * price.prompt + completion * price.completion
    return max(min_hold, ceil_micros(usd), 1)


def estimate_tokens_cost(
    prompt_tokens: int, completion_tokens: int, price: ModelPrice | None
) -> int | None:
    if price is None:
        return None
    usd = price.request + prompt_tokens * price.prompt + completion_tokens * price.completion
    return ceil_micros(usd) if usd > 0 else 0


def cost_from_usage(usage: Any, price: ModelPrice | None) -> tuple[int | None, int, int]:
    """(cost in micro-USD or None if unknown, prompt tokens, completion tokens)."""
    if not isinstance(usage, dict):
        return None, 0, 0
    pt = usage.get("prompt_tokens")
    ct = usage.get("completion_tokens")
    prompt_tokens = pt if isinstance(pt, int) and pt >= 0 else 0
    completion_tokens = ct if isinstance(ct, int) and ct >= 0 else 0
    cost = usage.get("cost")
    if isinstance(cost, int | float | str) and not isinstance(cost, bool):
        return ceil_micros(cost), prompt_tokens, completion_tokens
    return (
        estimate_tokens_cost(prompt_tokens, completion_tokens, price),
        prompt_tokens,
        (completion_tokens),
    )
