"""Honest holds: the guard estimate bounds the worst cost a provider may bill for the request,
across ``n``, image and file inputs and tool definitions (hypothesis)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.gateway.money import ceil_micros
from dexto.gateway.pricing import (
    FILE_TOKENS,
    IMAGE_TOKENS,
    TOOLS_OVERHEAD_TOKENS,
    ModelPrice,
    guard_estimate,
    request_shape,
)
from dexto.gateway.validation import max_tokens

_usd = st.decimals(min_value=0, max_value=Decimal("0.0001"), places=9)
_prices = st.builds(
    ModelPrice,
    prompt=_usd,
    completion=_usd,
    request=_usd,
    image=st.decimals(min_value=0, max_value=Decimal("0.01"), places=6),
    max_completion_tokens=st.one_of(st.none(), st.integers(1, 100_000)),
)
_image = st.sampled_from(
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_image", "image_url": "https://e.com/a.jpg"},
    ]
)
_file = st.sampled_from(
    [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "https://e.com/a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
)
_text = st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=40))


@st.composite
def requests(draw: Any) -> tuple[dict[str, Any], int, int, int]:
    """(payload, n, images, files) — counts from the generator, not from the code under test."""
    messages: list[dict[str, Any]] = []
    images = files = 0
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            messages.append({"role": "user", "content": draw(st.text(max_size=60))})
            continue
        parts = draw(st.lists(st.one_of(_text, _image, _file), min_size=1, max_size=5))
        images += sum(p["type"] in ("image_url", "input_image") for p in parts)
        files += sum(p["type"] in ("file", "input_audio") for p in parts)
        messages.append({"role": "user", "content": parts})
    payload: dict[str, Any] = {"model": "m", "messages": messages}
    n = draw(st.integers(1, 8))
    if n > 1 or draw(st.booleans()):
        payload["n"] = n
    if draw(st.booleans()):
        payload["max_tokens"] = draw(st.integers(1, 50_000))
    if draw(st.booleans()):  # both limits given: a provider may honour either
        payload["max_completion_tokens"] = draw(st.integers(1, 50_000))
    if draw(st.booleans()):
        payload["tools"] = [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ]
    return payload, n, images, files


@settings(max_examples=300, deadline=None)
@given(
    req=requests(),
    price=_prices,
    frac=st.tuples(*(st.floats(0, 1) for _ in range(4))),
    default_max=st.integers(1, 8192),
)
def test_hold_covers_the_worst_provider_bill(
    req: tuple[dict[str, Any], int, int, int],
    price: ModelPrice,
    frac: tuple[float, float, float, float],
    default_max: int,
) -> None:
    payload, n, images, files = req
    raw = json.dumps(payload).encode()
    hold = guard_estimate(
        len(raw),
        max_tokens(payload),
        price,
        min_hold=1,
        default_max_tokens=default_max,
        unknown_model_hold=50_000,
        shape=request_shape(payload),
    )
    # The worst bill a provider may send within the documented allowances: text tokens up to
    # the text's UTF-8 bytes, each image/file up to its token allowance plus the image price,
    # the tool prompt, and n choices each running to the completion limit, n request fees.
    text_bytes = sum(
        len(p.get("text", "").encode())
        for m in payload["messages"]
        for p in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
    )
    limit = max(payload.get("max_tokens", 0), payload.get("max_completion_tokens", 0)) or min(
        default_max, price.max_completion_tokens or default_max
    )
    prompt = (
        text_bytes
        + int(frac[0] * images * IMAGE_TOKENS)
        + int(frac[1] * files * FILE_TOKENS)
        + (int(frac[2] * TOOLS_OVERHEAD_TOKENS) if "tools" in payload else 0)
    )
    worst = ceil_micros(
        n * price.request
        + prompt * price.prompt
        + n * limit * price.completion
        + (images + files) * price.image
    )
    assert hold >= worst
