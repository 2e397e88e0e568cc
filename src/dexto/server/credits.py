"""Credits remaining as last reported by the gateway (``X-Dexto-Credits-Remaining``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["CreditsTracker"]


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
