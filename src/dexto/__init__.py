"""dexto: choose a model by what it is; dexto decides how the call is paid and routed.

The public surface is exactly ``__all__``; everything else is private and may change.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from dexto.llm.execution import (
        ChatResult,
        Done,
        Model,
        RouteTaken,
        TextDelta,
        ToolCall,
        ToolCallDelta,
        Usage,
        open_model,
    )

# The execution API imports httpx; it is loaded on first use so `dexto route` stays fast.
_LAZY = {
    "ChatResult",
    "Done",
    "Model",
    "RouteTaken",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "open_model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from dexto.llm import execution

        return getattr(execution, name)
    raise AttributeError(f"module 'dexto' has no attribute {name!r}")


__all__ = [
    "AuthFailedError",
    "ChatResult",
    "Done",
    "Model",
    "RouteTaken",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "open_model",
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
