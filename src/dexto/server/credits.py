"""Credits remaining as last reported by the gateway (``X-Dexto-Credits-Remaining``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from dexto.config.paths import DextoPaths

__all__ = ["CreditsTracker", "fetch_balance"]

log = logging.getLogger("dexto.server")


@dataclass
class _Seen:
    usd: str
    at: float


class CreditsTracker:
    """Thread-safe last-known balance; set from chat results, read by ``/llm/current``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: _Seen | None = None

    def update(self, usd: object) -> None:
        if usd is None:
            return
        with self._lock:
            self._seen = _Seen(str(usd), time.time())

    def to_json(self) -> dict[str, object] | None:
        with self._lock:
            seen = self._seen
        return None if seen is None else {"usd": seen.usd, "asOf": seen.at}


def fetch_balance(paths: DextoPaths, env: Mapping[str, str]) -> str | None:
    """The account balance from the gateway's ``GET /me/usage``; None without a Dexto key or
    when the gateway cannot be asked (offline, refused key). Never raises, never logs the key."""
    try:
        from dexto.auth.credentials import dexto_credential
        from dexto.auth.login import fetch_usage
        from dexto.auth.store import read_auth_store
        from dexto.llm.routing import gateway_root

        cred = dexto_credential(env, read_auth_store(paths.auth))
        if cred is None or cred.secret is None:
            return None
        balance = fetch_usage(gateway_root(env), cred.secret).get("balanceUsd")
        return None if balance is None else str(balance)
    except Exception as exc:  # a start-up nicety: the page shows "—" instead
        log.info("could not read the Dexto balance: %s", type(exc).__name__)
        return None
