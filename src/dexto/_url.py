"""URLs as they may be shown: the password and secret-named query parameters replaced by ``***``.

Used wherever a URL from a user (an environment variable, a config file, a CLI flag) reaches
output, a log or an error. Works on text that does not parse as a URL too (bad port, unclosed
``[``), so a malformed URL can be reported without its secret.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["host_and_port_ok", "redact_url", "redact_urls_in"]

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
_SECRET_PARAM = re.compile(r"pass|pwd|token|key|secret|auth|sig|credential", re.IGNORECASE)


def _redact_netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return netloc
    user = userinfo.partition(":")[0]
    return f"{user}:***@{host}"


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}=***" if eq and _SECRET_PARAM.search(name) else pair)
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with ``user:password@`` → ``user:***@`` and the values of query parameters named
    like a secret (password, token, key, api_key, secret, auth, sig, …) → ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            end = min(end, i)
    netloc, tail = (rest[:end], rest[end:]) if sep else ("", rest)
    path, hash_, fragment = tail.partition("#")
    path, q, query = path.partition("?")
    out = (scheme + sep if sep else "") + _redact_netloc(netloc) + path
    if q:
        out += q + _redact_query(query)
    return out + hash_ + fragment


def redact_urls_in(text: str) -> str:
    """``text`` (e.g. an exception's message) with each ``scheme://…`` in it passed through
    ``redact_url``."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def host_and_port_ok(url: str, *, host_required: bool = True) -> bool:
    """Whether ``url`` parses, its port (if any) is a number from 1 to 65535, and it names a
    host (unless not ``host_required``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed "[", a port that is not a number in range
        return False
    return port != 0 and (bool(parts.hostname) or not host_required)
