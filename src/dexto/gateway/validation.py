"""Validation of chat-completion request bodies, and the fixed error bodies of the hot path."""

from __future__ import annotations

import json
from typing import Any

from dexto.gateway.http_errors import error_body
from dexto.gateway.model_ids import model_id_problem

__all__ = ["BAD_CTYPE", "INVALID_KEY", "TOO_LARGE", "is_json", "max_tokens", "parse_chat"]


def is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def max_tokens(payload: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def parse_chat(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(problem, payload): problem is "" when the body is a valid chat request."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "The request body is not valid JSON.", {}
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
    "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.", "invalid_request_error"
)
TOO_LARGE = error_body(
    "REQUEST_TOO_LARGE", "The request body is too large.", "invalid_request_error"
)
