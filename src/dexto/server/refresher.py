"""Background marketplace refresh: never on a request's path, never raising."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import refresh_marketplace

__all__ = ["MarketplaceRefresher"]

log = logging.getLogger("dexto.server")


class MarketplaceRefresher:
    """A daemon thread that refreshes the cache when stale, then every ``interval`` seconds."""

    def __init__(self, paths: DextoPaths, env: Mapping[str, str], interval: float) -> None:
        self.paths = paths
        self.env = dict(env)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="dexto-marketplace-refresh", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                refresh_marketplace(self.paths, self.env)
            except Exception as exc:  # refresh_marketplace never raises; belt and braces
                log.info("marketplace refresh failed: %s", type(exc).__name__)
            self._stop.wait(self.interval)
