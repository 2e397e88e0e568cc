"""OpenAI-style error bodies for the gateway: ``{"error": {code, message, type}}``."""

from __future__ import annotations

import json

from dexto.gateway.money import format_usd_cents

__all__ = ["error_body", "insufficient_credits_body"]


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
