"""The admission guard estimate (the hold) and the actual cost of a request.

Guard estimate G, in micro-USD, rounded up::

    G = max(min_hold, n·P_req + (B + T + I·A_img + F·A_file)·P_in + n·C·P_out + (I + F)·P_img)

where ``B`` is the request body size in bytes (an upper bound on the prompt tokens its text
carries: every token covers at least one byte of the JSON that carries it), ``T`` is
``TOOLS_OVERHEAD_TOKENS`` when the request defines tools (the prompt a provider adds to describe
them), ``I`` / ``F`` the number of image / file parts in the messages, ``A_img`` / ``A_file``
their prompt-token allowances (``IMAGE_TOKENS`` / ``FILE_TOKENS``), ``n`` the number of choices
asked for, ``C`` the request's ``max_completion_tokens`` / ``max_tokens`` if set, else
``min(default_max_tokens, the model's listed max completion tokens)``, and ``P_req``, ``P_in``,
``P_out``, ``P_img`` the model's listed per-request, per-prompt-token, per-completion-token and
per-image prices. A model with no listed price, or a listed price below zero (OpenRouter's
"dynamic" price, e.g. ``openrouter/auto``), gets ``max(min_hold, unknown_model_hold)``.

Cost: the upstream's ``usage.cost`` (USD) when it is a finite number in ``[0, MAX_COST_USD]``,
else ``prompt_tokens·P_in + completion_tokens·P_out + P_req``; rounded up to the micro-dollar.
A ``usage.cost`` that is present but not such a number is *bad*: the charge is then estimated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_CEILING,
    Context,
    Decimal,
    InvalidOperation,
)
from typing import Any, NamedTuple

__all__ = [
    "FILE_TOKENS",
    "IMAGE_TOKENS",
    "MAX_COST_USD",
    "MAX_TOKENS",
    "TOOLS_OVERHEAD_TOKENS",
    "ModelPrice",
    "RequestShape",
    "UsageCost",
    "cost_from_usage",
    "cost_micros",
    "chunk_text_tokens",
    "estimate_bytes_tokens",
    "estimate_text_tokens",
    "estimate_tokens_cost",
    "guard_estimate",
    "message_text_tokens",
    "parse_price",
    "request_shape",
]

MAX_COST_USD = Decimal(1000)  # a usage.cost above this for one request is treated as bad
MAX_TOKENS = 10**9  # token counts above this (or negative, or not integers) are ignored
TOOLS_OVERHEAD_TOKENS = 1_000  # prompt tokens a provider may add to describe tool definitions
IMAGE_TOKENS = 4_000  # prompt tokens allowed per image part (OpenAI high detail ≤ ~1.1k)
FILE_TOKENS = 20_000  # prompt tokens allowed per file part (e.g. a PDF given by URL)
MAX_PRICE_SCALE = 30  # decimals of a listed price kept exactly (10**-30 USD)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    prompt: Decimal  # USD per prompt token
    completion: Decimal  # USD per completion token
    request: Decimal = Decimal(0)  # USD per request
    max_completion_tokens: int | None = None
    image: Decimal = Decimal(0)  # USD per input image
    # The four prices (request, prompt, completion, image) as integers in units of
    # 10**-scale USD, set from the above: exact for up to MAX_PRICE_SCALE decimals (a price
    # with more is rounded up to that many).
    scale: int = field(init=False, repr=False, compare=False)
    units: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prices = (self.request, self.prompt, self.completion, self.image)
        scale = min(MAX_PRICE_SCALE, max(0, *(-int(p.as_tuple().exponent) for p in prices)))
        r, p, c, i = (int(d.scaleb(scale, _SCALE).to_integral_value(ROUND_CEILING)) for d in prices)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "units", (r, p, c, i))


_SCALE = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _ceil_micros_scaled(total: int, scale: int) -> int:
    """``total`` units of 10**-scale USD → micro-USD rounded up (0 for zero or less)."""
    if total <= 0:
        return 0
    if scale <= 6:
        return total * _POW10[6 - scale]
    return -(-total // _POW10[scale - 6])


_POW10: list[int] = [10**i for i in range(MAX_PRICE_SCALE + 1)]


def _price(value: Any) -> Decimal | None:
    """A listed price → Decimal; None when it is not a finite number or below zero (dynamic)."""
    if isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d >= 0 else None


def parse_price(entry: dict[str, Any]) -> ModelPrice | None:
    """An OpenRouter model-list entry → its price (None when it lists none, or a dynamic one)."""
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict) or "prompt" not in pricing or "completion" not in pricing:
        return None
    parts = {
        name: _price(pricing.get(name, 0) or 0)
        for name in ("prompt", "completion", "request", "image")
    }
    if any(v is None for v in parts.values()):
        return None  # "-1" (dynamic) or garbage: hold the unknown-model allowance
    top = entry.get("top_provider")
    max_c = top.get("max_completion_tokens") if isinstance(top, dict) else None
    return ModelPrice(
        prompt=parts["prompt"] or Decimal(0),
        completion=parts["completion"] or Decimal(0),
        request=parts["request"] or Decimal(0),
        image=parts["image"] or Decimal(0),
        max_completion_tokens=max_c if isinstance(max_c, int) and max_c > 0 else None,
    )


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What, besides the body size and ``max_tokens``, the hold depends on."""

    n: int = 1
    images: int = 0
    files: int = 0
    tools: bool = False


_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
_FILE_TYPES = frozenset({"file", "input_file", "input_audio", "document"})


def request_shape(payload: dict[str, Any]) -> RequestShape:
    n = payload.get("n")
    images = files = 0
    messages = payload.get("messages")
    for m in messages if isinstance(messages, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in _IMAGE_TYPES:
                    images += 1
                elif kind in _FILE_TYPES:
                    files += 1
    tools = bool(payload.get("tools") or payload.get("functions"))
    n = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    if n == 1 and not (images or files or tools):
        return _ONE  # the usual request: one choice, text only, no tools
    return RequestShape(n=n, images=images, files=files, tools=tools)


_ONE = RequestShape()


def guard_estimate(
    body_bytes: int,
    max_tokens: int | None,
    price: ModelPrice | None,
    *,
    min_hold: int,
    default_max_tokens: int,
    unknown_model_hold: int,
    shape: RequestShape = _ONE,
) -> int:
    if price is None:
        return max(min_hold, unknown_model_hold, 1)
    if max_tokens is not None and max_tokens > 0:
        completion = max_tokens
    else:
        completion = default_max_tokens
        if price.max_completion_tokens:
            completion = min(completion, price.max_completion_tokens)
    prompt = (
        body_bytes
        + (TOOLS_OVERHEAD_TOKENS if shape.tools else 0)
        + shape.images * IMAGE_TOKENS
        + shape.files * FILE_TOKENS
    )
    req, p_in, p_out, p_img = price.units
    total = (
        shape.n * req
        + prompt * p_in
        + shape.n * completion * p_out
        + (shape.images + shape.files) * p_img
    )
    return max(min_hold, _ceil_micros_scaled(total, price.scale), 1)


def estimate_tokens_cost(
    prompt_tokens: int, completion_tokens: int, price: ModelPrice | None
) -> int | None:
    if price is None:
        return None
    req, p_in, p_out, _ = price.units
    total = req + prompt_tokens * p_in + completion_tokens * p_out
    return _ceil_micros_scaled(total, price.scale)


def estimate_text_tokens(text: str) -> int:
    """Tokenizer-free completion-token estimate: ⌈ASCII chars / 4⌉ + one per other char.

    English BPE tokenizers average about four characters per token; CJK and most other
    scripts take about one token per character, so the estimate leans high for them.
    """
    ascii_n = len(text.encode("ascii", "ignore"))
    return -(-ascii_n // 4) + (len(text) - ascii_n)


_ASCII = bytes(range(128))


def estimate_bytes_tokens(raw: bytes) -> int:
    """The same estimate over UTF-8 bytes (JSON escapes count as the ASCII they are); a
    non-ASCII character is 2–4 bytes, so every 2 such bytes count as one token (leans high)."""
    if raw.isascii():
        return -(-len(raw) // 4)
    non_ascii = len(raw.translate(None, _ASCII))
    return -(-(len(raw) - non_ascii) // 4) + -(-non_ascii // 2)


_TEXT_FIELDS = ("content", "reasoning", "refusal")


def message_text_tokens(message: Any) -> int:
    """Estimated tokens of one chat ``message`` / ``delta``: text, reasoning, tool arguments."""
    if not isinstance(message, dict):
        return 0
    total = 0
    for name in _TEXT_FIELDS:
        value = message.get(name)
        if isinstance(value, str):
            total += estimate_text_tokens(value)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            for key in ("name", "arguments"):
                if isinstance(fn.get(key), str):
                    total += estimate_text_tokens(fn[key])
    return total


# A JSON string never holds a raw line break, so a match never crosses a line (nor an event).
_STRING_FIELD = re.compile(
    rb'"(?:content|reasoning|refusal|arguments|name)":\s*"((?:[^"\\\n]|\\.)*)"'
)


def chunk_text_tokens(data: bytes) -> int:
    """Estimated tokens carried by SSE ``data:`` payloads (no JSON parse: a C regex scan);
    the sum over each string found, so any grouping of events gives the same total."""
    found = _STRING_FIELD.findall(data)
    if not found:
        return 0
    if b"".join(found).isascii():
        return sum([(len(raw) + 3) >> 2 for raw in found])
    return sum([estimate_bytes_tokens(raw) for raw in found])


class UsageCost(NamedTuple):
    cost: int | None  # micro-USD; None when neither a good cost nor tokens+price are known
    prompt_tokens: int | None
    completion_tokens: int | None
    bad_cost: bool = False  # usage.cost was present but not a finite number in [0, MAX_COST_USD]


def _tokens(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


_NUMBER = re.compile(r"([-+]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?[0-9]{1,9}))?")
_MAX_COST_INT = int(MAX_COST_USD)
_MAX_COST_MICROS = _MAX_COST_INT * 1_000_000


def _micros(negative: bool, digits: str, exponent: int) -> int | None:
    """``±digits·10**exponent`` USD → micro-USD rounded up; None when outside [0, MAX_COST_USD]."""
    digits = digits.lstrip("0")
    if not digits:
        return 0  # zero, whatever its sign or exponent
    if negative:
        return None
    n = len(digits)
    if n + exponent > 4:  # at least 10**4 USD
        return None
    whole = n + exponent + 6  # digits left of the micro-USD point (at most 10)
    if whole >= n:
        micros = int(digits) * 10 ** (whole - n)
    elif whole <= 0:
        micros = 1  # a positive amount below one micro-USD
    else:
        micros = int(digits[:whole]) + (1 if digits[whole:].strip("0") else 0)
    return micros if micros <= _MAX_COST_MICROS else None


def cost_micros(value: Any) -> int | None:
    """An upstream ``usage.cost`` (a JSON number, or a numeric string as :class:`Decimal` reads
    it) → micro-USD rounded up, computed exactly from its decimal text; None when it is not a
    finite number in ``[0, MAX_COST_USD]``. Plain decimal text is read with integers; other
    spellings :class:`Decimal` accepts (underscores, non-ASCII digits) go through it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 1_000_000 if 0 <= value <= _MAX_COST_INT else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    m = _NUMBER.fullmatch(text)
    if m is not None:
        sign, whole, frac, exp = m.groups()
        frac = frac or ""
        if whole or frac:
            return _micros(sign == "-", whole + frac, int(exp or 0) - len(frac))
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    sign_bit, digit_tuple, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    return _micros(bool(sign_bit), "".join(map(str, digit_tuple)), exponent)


def cost_from_usage(usage: Any, price: ModelPrice | None) -> UsageCost:
    """The upstream's ``usage`` object → cost (exact when ``bad_cost`` is False and cost set)."""
    if not isinstance(usage, dict):
        return UsageCost(None, None, None)
    pt = _tokens(usage.get("prompt_tokens"))
    ct = _tokens(usage.get("completion_tokens"))
    bad = False
    if "cost" in usage and usage["cost"] is not None:
        good = cost_micros(usage["cost"])
        if good is not None:
            return UsageCost(good, pt, ct)
        bad = True
    if pt is None and ct is None:
        return UsageCost(None, None, None, bad)
    return UsageCost(estimate_tokens_cost(pt or 0, ct or 0, price), pt, ct, bad)
