"""Replace the ``usage`` member of an upstream JSON answer without re-encoding the document.

A chat completion usually ends with its ``usage`` object. :func:`splice_usage` finds that member
in the bytes and puts the given object there; everything else is relayed byte for byte. It
answers only when the member it found is provably the document's one and only top-level
``usage`` (else ``None``, and the caller re-encodes the whole document):

* the bytes ``"usage"`` occur exactly once in the document;
* that string is preceded (whitespace aside) by ``{`` or ``,`` and followed by ``:`` — in a
  valid JSON text it is then a key (a quote after ``{``/``,`` cannot be a string's content,
  which escapes its quotes, nor a closing quote, which ``usage"`` could not follow);
* from its value to the document's closing ``}`` there is exactly one JSON value, equal to the
  parsed document's ``usage``: a value opened inside a nested container could not close, as
  one value, at the depth of the top-level object.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["splice_usage"]

_KEY = b'"usage"'
_COLON = re.compile(rb"[ \t\n\r]*:[ \t\n\r]*")
_WS = frozenset(b" \t\n\r")


def splice_usage(data: bytes, usage: dict[str, Any], replacement: dict[str, Any]) -> bytes | None:
    """``data`` with its top-level ``usage`` (parsed: ``usage``) replaced by ``replacement``
    (encoded as ``json.dumps(..., ensure_ascii=False)``, or ASCII-escaped when it holds
    a lone surrogate); None when not found as described."""
    at = data.find(_KEY)
    if at < 0 or data.find(_KEY, at + len(_KEY)) >= 0:
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
    try:
        found = json.loads(data[start : end + 1])
    except (ValueError, RecursionError):
        return None
    if type(found) is not dict or found != usage:
        return None
    try:
        encoded = json.dumps(replacement, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (escaped in the upstream's text): escape it
        encoded = json.dumps(replacement).encode("ascii")
    return b"".join((data[:start], encoded, data[end + 1 :]))
