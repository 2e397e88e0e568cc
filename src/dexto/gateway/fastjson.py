"""JSON through orjson (C, several times faster than the ``json`` module) where the result is the
one the ``json`` module gives, for the hot path's request and upstream answers.

:func:`loads_or_miss` returns orjson's value, or :data:`MISS` when the input is one on which
orjson and ``json.loads`` may differ; the caller then parses with ``json`` as before, so errors,
their messages and every edge case are ``json``'s. orjson differs from ``json.loads`` on:

* inputs orjson refuses and ``json`` accepts (``NaN``/``Infinity``, numbers beyond a double,
  lone surrogates, a UTF-8 BOM, UTF-16/32 or surrogate-carrying bytes, nesting beyond 1024):
  orjson raises, hence :data:`MISS`;
* integers beyond 64 bits, which orjson reads as floats: any run of 19 or more digits (every
  integer outside the signed 64-bit range has one) gives :data:`MISS` without parsing;
* nesting between ``json``'s recursion limit and orjson's 1024 levels: more than
  :data:`MAX_OPENERS` ``[`` and ``{`` bytes in all (strings included) gives :data:`MISS`.

Everything else (floats, duplicate keys, escapes, whitespace) parses to equal values of equal
types.

:func:`dumps_compact` is ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
encoded to UTF-8, byte for byte: orjson writes the same bytes except for floats whose exponent is
negative (``1e-06`` is ``1e-6`` there, ``1e-05`` is ``0.00001``), for integers beyond 64 bits
and nesting beyond 254 levels (orjson raises): when its output holds ``e-`` or ``0.0000``
anywhere (strings included) or it raises, ``json`` writes the value instead.
``tests/gateway/test_gw_fastjson.py`` checks both functions against the ``json`` module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson

__all__ = ["MAX_OPENERS", "MISS", "dumps_compact", "loads", "loads_or_miss"]

MAX_OPENERS: Final = 256  # "[" plus "{" bytes at most: far below json's recursion limit
MISS: Final[Any] = object()  # "parse with json": orjson's answer might differ
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # after _DIGITS_TO_ZERO: 19 digits in a row


def loads_or_miss(raw: bytes) -> Any:
    """``json.loads(raw)``'s value when orjson can give it, else :data:`MISS`."""
    if raw.count(b"[") + raw.count(b"{") > MAX_OPENERS:
        return MISS
    if _LONG_NUMBER in raw.translate(_DIGITS_TO_ZERO):
        return MISS
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return MISS


def loads(raw: bytes, fallback: Callable[[bytes], Any] = json.loads) -> Any:
    """:func:`loads_or_miss`'s value, or ``fallback(raw)`` (its value or its exception) on a
    :data:`MISS`."""
    value = loads_or_miss(raw)
    return fallback(raw) if value is MISS else value


def dumps_compact(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``'s bytes."""
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        out = b"e-"
    if b"e-" in out or b"0.0000" in out:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return out
