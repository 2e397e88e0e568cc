"""Put the charged cost into an upstream JSON answer without re-encoding the document.

A chat completion usually ends with its ``usage`` object. :func:`splice_usage` edits that
object in the bytes as :func:`stream.rewrite_usage` edits the parsed one: ``cost`` becomes the
charged amount (in place; appended when absent) and the upstream's ``cost`` text is appended as
``dexto_upstream_cost``. Everything else is relayed byte for byte (numbers keep their text, so
no float is converted back and forth). It answers only when the members it edits are provably
the document's own (else ``None``, and the caller re-encodes the whole document):

* the bytes ``"usage"`` occur exactly once in the document, preceded (whitespace aside) by
  ``{`` or ``,`` and followed by ``:`` — in a valid JSON text that string is then a key (a
  quote after ``{``/``,`` cannot be a string's content, which escapes its quotes, nor a closing
  quote, which ``usage"`` could not follow);
* from its value to the document's closing ``}`` there is exactly one JSON object: a value
  opened inside a nested container could not close, as one value, at the depth of the
  top-level object; so it is the last member of the top-level object;
* that object holds no ``\\u`` escape (every key is written as itself), no
  ``dexto_upstream_cost``, and the bytes ``"cost"`` at most once — only as its own key when it
  has a ``cost``, whose value is then a JSON number, string or literal (its end is lexical).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dexto.gateway.fastjson import loads
from dexto.gateway.money import format_usd

__all__ = ["splice_usage"]

_KEY = b'"usage"'
_COST = b'"cost"'
_COLON = re.compile(rb"[ \t\n\r]*:[ \t\n\r]*")
_SCALAR = re.compile(
    rb'-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|"(?:[^"\\]|\\.)*"'
    rb"|true|false|null|NaN|-?Infinity"
)
_WS = frozenset(b" \t\n\r")
# Checks that a slice is one JSON value; numbers are kept as text (no float conversion).
_CHECK = json.JSONDecoder(parse_float=str)


def splice_usage(data: bytes, usage: dict[str, Any], charged_micros: int) -> bytes | None:
    """``data`` with its top-level ``usage`` (parsed: ``usage``) rewritten as
    :func:`stream.rewrite_usage` does (the cost written as ``format_usd``'s decimal); None
    when the members are not found as described above."""
    at = data.find(_KEY)
    if at < 0 or data.find(_KEY, at + len(_KEY)) >= 0 or "dexto_upstream_cost" in usage:
        return None
    i = at - 1
    while i >= 0 and data[i] in _WS:
        i -= 1
    if i < 0 or data[i] not in b"{,":
        return None
    m = _COLON.match(data, at + len(_KEY))
    if m is None:
        return None
    start = m.end()
    end = len(data) - 1
    while end >= 0 and data[end] in _WS:
        end -= 1
    if end <= start or data[end] != 0x7D:  # the document's closing "}"
        return None
    end -= 1
    while end > start and data[end] in _WS:
        end -= 1
    region = data[start : end + 1]  # the usage object, "{" … "}"
    if region[:1] != b"{" or b"\\u" in region:
        return None
    try:  # (its keys are json's: only they are compared)
        found = loads(region, lambda raw: _CHECK.decode(raw.decode("utf-8")))
    except (ValueError, RecursionError):
        return None
    if type(found) is not dict or found.keys() != usage.keys():
        return None
    cost = format_usd(charged_micros).encode()
    close = end  # the usage object's "}"
    if "cost" not in usage:
        if region.count(_COST):
            return None
        sep = b", " if usage else b""
        return b"".join((data[:close], sep, b'"cost": ', cost, data[close:]))
    k = region.find(_COST)
    if k < 0 or region.find(_COST, k + len(_COST)) >= 0:
        return None
    m = _COLON.match(region, k + len(_COST))
    v = _SCALAR.match(region, m.end()) if m is not None else None
    if v is None:
        return None
    v0, v1 = start + v.start(), start + v.end()
    return b"".join(
        (data[:v0], cost, data[v1:close], b', "dexto_upstream_cost": ', data[v0:v1], data[close:])
    )
