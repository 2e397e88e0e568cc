"""OpenAI-style error bodies for the gateway: ``{"error": {code, message, type}}``."""

from __future__ import annotations

import json

from dexto.gateway.money import format_usd_cents

__all__ = ["HttpError", "error_body", "insufficient_credits_body"]


def error_body(code: str, message: str, type_: str, **extra: object) -> bytes:
    err: dict[str, object] = {"code": code, "message": message, "type": type_}
    err.update(extra)
    return json.dumps({"error": err}).encode("utf-8")


def insufficient_credits_body(balance_micros: int, needed_micros: int) -> bytes:
    return error_body(
        "INSUFFICIENT_CREDITS",
        f"Insufficient Dexto credits. Balance: ${format_usd_cents(balance_micros)}. "
        f"This request needs at least ${format_usd_cents(max(needed_micros, 10_000))} available "
        "(lower max_tokens or shorten the prompt). Top up your Dexto credits, or set your own "
        "provider key to continue.",
        "insufficient_credits",
    )


class HttpError(Exception):
    """Raised by a handler to answer a JSON error (turned into a response by :mod:`guard`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        type_: str = "invalid_request_error",
        *,
        fix: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type_ = type_
        self.fix = fix
        self.headers = headers or {}

    def body(self) -> bytes:
        extra = {"fix": self.fix} if self.fix else {}
        return error_body(self.code, self.message, self.type_, **extra)
