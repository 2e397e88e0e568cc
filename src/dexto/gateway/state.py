"""Per-worker state built by the app's lifespan; nothing here is needed for billing correctness."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from dexto.gateway.metrics import Metrics
from dexto.gateway.ratelimit import RateLimiter
from dexto.gateway.runner import DbRunner
from dexto.gateway.settings import GatewaySettings
from dexto.gateway.upstream import ModelCatalog, Upstream

__all__ = ["GatewayState"]


@dataclass
class GatewayState:
    settings: GatewaySettings
    runner: DbRunner
    upstream: Upstream
    catalog: ModelCatalog
    limiter: RateLimiter
    log: logging.Logger
    metrics: Metrics = field(default_factory=Metrics)
