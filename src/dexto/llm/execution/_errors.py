"""HTTP and transport failures → the dexto error tree, translated here and only here.

Messages name the endpoint and the credential *source*; the secret itself is scrubbed from any
text that came back from a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from dexto._url import redact_url
from dexto.errors import (
    AuthFailedError,
    ConfigError,
    ExecutionError,
    InsufficientCreditsError,
    UpstreamError,
)
from dexto.llm.execution._target import Target

__all__ = ["body_error", "http_error", "invalid_url_error", "transport_error"]

_BALANCE = re.compile(r"Balance:\s*\$\s*(-?[0-9]+(?:\.[0-9]+)?)")
_MAX_DETAIL = 300


def _scrub(text: str, target: Target) -> str:
    key = target.key()
    if key:
        text = text.replace(key, "***")
    return text[:_MAX_DETAIL]


def _detail(doc: Any) -> tuple[str | None, str]:
    """(code, message) from the error bodies of OpenAI, Anthropic, Google, Cohere, the gateway."""
    if not isinstance(doc, dict):
        return None, ""
    err = doc.get("error", doc)
    if isinstance(err, str):
        return None, err
    if not isinstance(err, dict):
        return None, ""
    code = err.get("code") or err.get("type") or err.get("status")
    message = err.get("message") or doc.get("message") or ""
    return (str(code) if code is not None else None), str(message)


def _parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def http_error(
    target: Target, status: int, body: bytes, headers: Mapping[str, str]
) -> ExecutionError:
    code, message = _detail(_parse_body(body))
    message = _scrub(message, target)
    if target.is_gateway and status == 402 and code == "INSUFFICIENT_CREDITS":
        return insufficient(message, headers)
    if status in (401, 403):
        return _auth_failed(target, status, message)
    what = f"{target.label} answered HTTP {status}" + (f": {message}" if message else "")
    if status == 429:
        after = headers.get("retry-after")
        return UpstreamError(
            f"{what} (rate limited)",
            status=status,
            fix=f"wait {after + ' s ' if after else ''}and retry",
        )
    if status >= 500:
        return UpstreamError(what, status=status, fix="retry later; the provider is failing")
    if status == 402:
        return _payment_required(target, code, message)
    return UpstreamError(
        what, status=status, fix=f"check the model ID {target.model!r} and the request parameters"
    )


def _payment_required(target: Target, code: str | None, message: str) -> UpstreamError:
    """A 402 other than the gateway's INSUFFICIENT_CREDITS: an account's credit or billing."""
    named = f" ({code})" if code and not code.isdigit() else ""
    what = f"{target.label} answered HTTP 402 Payment Required{named}" + (
        f": {message}" if message else ""
    )
    if target.is_gateway:
        fix = (
            f"check the Dexto account of the key from {target.credential_source} with "
            "`dexto billing status`, top up your Dexto credits if the balance is low, then retry"
        )
    else:
        fix = (
            f"add credits or set up billing in your {target.label} account (the key from "
            f"{target.credential_source}), or raise that key's spending limit, then retry"
        )
    return UpstreamError(what, status=402, fix=fix)


def insufficient(message: str, headers: Mapping[str, str]) -> InsufficientCreditsError:
    balance = headers.get("x-dexto-credits-remaining")
    if balance is None:
        found = _BALANCE.search(message)
        balance = found.group(1) if found else None
    return InsufficientCreditsError(
        message or "Insufficient Dexto credits.",
        balance_usd=balance,
        fix="top up your Dexto credits",
    )


def _auth_failed(target: Target, status: int, message: str) -> AuthFailedError:
    if target.is_gateway:
        fix = (
            f"the Dexto key from {target.credential_source} was refused: run `dexto login` "
            "again or check DEXTO_API_KEY"
        )
    else:
        fix = f"check the {target.label} key from {target.credential_source}"
    what = f"{target.label} refused the credential (HTTP {status})"
    return AuthFailedError(what + (f": {message}" if message else ""), fix=fix)


def body_error(target: Target, doc: Any) -> ExecutionError:
    """An error object that arrived inside a stream (after the HTTP status was 200)."""
    code, message = _detail(doc)
    message = _scrub(message, target)
    if target.is_gateway and code == "INSUFFICIENT_CREDITS":
        return insufficient(message, {})
    return UpstreamError(
        f"{target.label} reported an error mid-stream"
        + (f" ({code})" if code else "")
        + (f": {message}" if message else ""),
        fix="retry the request",
    )


def _where(target: Target) -> str:
    return f"{target.label} at {redact_url(target.base_url)}" if target.base_url else target.label


def transport_error(target: Target, exc: Exception) -> UpstreamError:
    """A network failure (httpx's, or botocore's for Bedrock) naming the endpoint, redacted."""
    where = _where(target)
    if isinstance(exc, httpx.TimeoutException) or type(exc).__name__.endswith("TimeoutError"):
        return UpstreamError(f"{where} timed out", fix="retry later or raise the timeout")
    if target.base_url_from:
        fix = f"check your network and {target.base_url_from}"
    else:
        fix = "check your network"
    return UpstreamError(f"could not reach {where} ({type(exc).__name__})", fix=fix)


def invalid_url_error(target: Target) -> ConfigError:
    """The endpoint URL cannot be used (a bad port, an unclosed ``[``): names where it was set."""
    origin = target.base_url_from or f"the {target.label} endpoint"
    example = (
        "https://api.dexto.ai, or unset it" if target.is_gateway else "http://localhost:4000/v1"
    )
    return ConfigError(
        f"the URL of {_where(target)} is not valid (bad host or port)",
        field=origin if " " not in origin else "baseURL",
        fix=f"correct {origin}, e.g. {example}",
    )
