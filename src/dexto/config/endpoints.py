"""Where the Dexto gateway is: ``DEXTO_GATEWAY_URL`` (default ``https://api.dexto.ai``).

Used by both the routing decision (``{root}/v1`` for model calls) and the account client
(``{root}/auth/…``, ``{root}/me/usage``), so it lives below both.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_GATEWAY_URL", "gateway_root"]

DEFAULT_GATEWAY_URL = "https://api.dexto.ai"


def gateway_root(env: Mapping[str, str]) -> str:
    """``DEXTO_GATEWAY_URL`` without a trailing ``/`` or ``/v1`` (account endpoints live here)."""
    raw = env.get("DEXTO_GATEWAY_URL", "").strip() or DEFAULT_GATEWAY_URL
    raw = raw.rstrip("/")
    return raw[: -len("/v1")] if raw.endswith("/v1") else raw
