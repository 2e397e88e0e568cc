"""Run chat requests on the decided route (SPEC §7): the library API.

    from dexto.llm.execution import open_model

    model = open_model("anthropic/claude-sonnet-4-5-20250929")
    result = model.complete("Say hello")
    print(result.text, result.route.route, result.credits_remaining)

``Model.complete``/``stream`` (sync) and ``acomplete``/``astream`` (async) take OpenAI-style
messages and tools on every provider. Through the Dexto gateway, a ``402 INSUFFICIENT_CREDITS``
is retried once, directly with your own key, when the decision has a fallback plan and nothing
was delivered yet; otherwise ``InsufficientCreditsError`` is raised. User guide:
``docs/execution.md``.
"""

from __future__ import annotations

from dexto.llm.execution._model import Model
from dexto.llm.execution._open import open_model
from dexto.llm.execution._types import (
    ChatResult,
    Done,
    RouteTaken,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ChatResult",
    "Done",
    "Model",
    "RouteTaken",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "open_model",
]
