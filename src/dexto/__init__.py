"""dexto: choose a model by what it is; dexto decides how the call is paid and routed.

The public surface is exactly ``__all__``; everything else is private and may change.
"""

from dexto._version import __version__
from dexto.errors import (
    AuthFailedError,
    ConfigError,
    DextoError,
    ExecutionError,
    InsufficientCreditsError,
    InvalidModelIdError,
    MissingExtraError,
    NoCredentialsError,
    ProviderNotAllowedError,
    UnknownProviderError,
    UpstreamError,
)
from dexto.llm.context import build_context
from dexto.llm.policy import RoutingPolicy
from dexto.llm.routing import RouteDecision, RoutingContext, decide
from dexto.llm.selection import Selection, parse_selection

__all__ = [
    "AuthFailedError",
    "ConfigError",
    "DextoError",
    "ExecutionError",
    "InsufficientCreditsError",
    "InvalidModelIdError",
    "MissingExtraError",
    "NoCredentialsError",
    "ProviderNotAllowedError",
    "RouteDecision",
    "RoutingContext",
    "RoutingPolicy",
    "Selection",
    "UnknownProviderError",
    "UpstreamError",
    "__version__",
    "build_context",
    "decide",
    "parse_selection",
]
