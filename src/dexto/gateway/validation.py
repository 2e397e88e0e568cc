"""Validation of chat-completion request bodies, and the fixed error bodies of the hot path."""

from __future__ import annotations

import json
from typing import Any

from dexto.gateway.fastjson import MISS, loads_or_miss
from dexto.gateway.http_errors import HttpError, error_body
from dexto.gateway.model_ids import model_id_problem

__all__ = [
    "BAD_CTYPE",
    "INVALID_KEY",
    "TOO_LARGE",
    "BadJson",
    "is_json",
    "json_content_type",
    "load_json",
    "max_tokens",
    "parse_chat",
]


class BadJson(ValueError):
    """The body is not a JSON document we accept (the message says why)."""


def _reject_constant(name: str) -> Any:
    raise BadJson(f"the request body contains {name}, which is not valid JSON")


# Built once: ``json.loads`` with options builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def load_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no lone surrogates, nesting bounded by Python's
    recursion limit. Raises :class:`BadJson` with a message for the client."""
    value = loads_or_miss(raw)  # orjson accepts none of the above, and gives json's values
    if value is not MISS:
        return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJson("The request body is not valid UTF-8.") from None
    try:
        if text.startswith("\ufeff"):  # as json.loads: a BOM is not JSON
            raise ValueError("Unexpected UTF-8 BOM")
        value = _DECODER.decode(text)
    except RecursionError:
        raise BadJson("The request body is nested too deeply.") from None
    except BadJson:
        raise
    except ValueError:
        raise BadJson("The request body is not valid JSON.") from None
    if "\\ud" in text or "\\uD" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadJson(
                "The request body contains an unpaired UTF-16 surrogate escape."
            ) from None
    return value


_PLAIN_JSON = frozenset({b"application/json", b"application/json; charset=utf-8"})


def json_content_type(value: bytes | str) -> bool:
    """True for ``application/json`` with no charset or a UTF-8 one."""
    if value in _PLAIN_JSON:  # what clients send: no parsing
        return True
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    media, _, params = text.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def json_object_or_error(raw: bytes) -> dict[str, Any]:
    """A JSON object body for the non-hot endpoints (an empty body is ``{}``); raises
    :class:`HttpError` 400."""
    if not raw.strip():
        return {}
    try:
        doc = load_json(raw)
    except BadJson as exc:
        raise HttpError(400, "INVALID_REQUEST", str(exc), fix="Send a JSON object.") from None
    if not isinstance(doc, dict):
        raise HttpError(
            400,
            "INVALID_REQUEST",
            "The request body must be a JSON object.",
            fix="Send a JSON object.",
        )
    return doc


def is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


def max_tokens(payload: dict[str, Any]) -> int | None:
    """The completion limit the hold must cover: the larger of ``max_completion_tokens`` and
    ``max_tokens`` when both are given (providers differ in which one they honour)."""
    limits = [
        value
        for value in (payload.get("max_completion_tokens"), payload.get("max_tokens"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    return max(limits) if limits else None


def parse_chat(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(problem, payload): problem is "" when the body is a valid chat request."""
    try:
        payload = load_json(raw)
    except BadJson as exc:
        return str(exc), {}
    if not isinstance(payload, dict):
        return "The request body must be a JSON object.", {}
    if problem := model_id_problem(payload.get("model")):
        return problem, {}
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array.", {}
    if not all(isinstance(m, dict) for m in messages):
        return "each item of 'messages' must be an object.", {}
    if "stream" in payload and not isinstance(payload["stream"], bool | None):
        return "'stream' must be a boolean.", {}
    for name in ("max_tokens", "max_completion_tokens"):
        value = payload.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            return f"'{name}' must be a positive integer.", {}
    if "tools" in payload and not isinstance(payload["tools"], list | None):
        return "'tools' must be an array.", {}
    return "", payload


INVALID_KEY = error_body(
    "INVALID_API_KEY",
    "Invalid or revoked Dexto API key. Run `dexto login` or check DEXTO_API_KEY.",
    "invalid_request_error",
)
BAD_CTYPE = error_body(
    "UNSUPPORTED_MEDIA_TYPE",
    "Send the body as application/json (UTF-8).",
    "invalid_request_error",
)
TOO_LARGE = error_body(
    "REQUEST_TOO_LARGE", "The request body is too large.", "invalid_request_error"
)


ADMIN_BODY_LIMIT = 64 * 1024  # admin and device-login bodies are small


async def read_limited(request: Any, limit: int) -> bytes:
    """The body of a Starlette request, refused with 413 past ``limit`` bytes (checked on
    ``Content-Length`` and while reading)."""
    too_large = HttpError(
        413,
        "REQUEST_TOO_LARGE",
        "The request body is too large.",
        fix=f"Send at most {limit} bytes.",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object_body(request: Any, limit: int = ADMIN_BODY_LIMIT) -> dict[str, Any]:
    """A JSON object body (an empty body is ``{}``): 413 too large, 415 not JSON, 400 malformed."""
    raw = await read_limited(request, limit)
    if not raw.strip():
        return {}
    if not json_content_type(request.headers.get("content-type", "")):
        raise HttpError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the body as application/json (UTF-8).",
            fix="Set Content-Type: application/json.",
        )
    return json_object_or_error(raw)


def optional_str(doc: dict[str, Any], name: str, *, max_len: int = 1000) -> str | None:
    """``doc[name]`` as a string, ``None`` when absent or null; 400 naming the field otherwise."""
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise HttpError(
            400,
            "INVALID_REQUEST",
            f"'{name}' must be a string of at most {max_len} characters.",
            fix=f"Send '{name}' as a JSON string.",
        )
    return value


def optional_amount(doc: dict[str, Any], name: str) -> str | None:
    """A USD amount given as a JSON number or string, as text for :func:`money.parse_usd`."""
    value = doc.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | str)
        or (isinstance(value, str) and len(value) > 40)
    ):
        raise HttpError(
            400,
            "INVALID_REQUEST",
            f"'{name}' must be an amount in USD (a number or a decimal string).",
            fix=f'Send e.g. "{name}": "10.00".',
        )
    return str(value)
