"""Turn the execution library's stream into server-sent events.

Events, in order::

    event: route    data: {"planned": <dexto route --json object>}
    event: delta    data: {"text": "..."}                       (zero or more)
    event: tool_call data: {...}                                (zero or more)
    event: done     data: {"text", "route": {"route", "effectiveProvider", "effectiveModel",
                           "fellBack", "reason"}, "usage", "creditsRemaining", "toolCalls",
                           "warnings"}
    event: error    data: {"error": {"code", "message", "fix"}}  (instead of done)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from dexto.errors import DextoError
from dexto.llm.execution import ChatResult, StreamEvent, TextDelta, ToolCallDelta

__all__ = ["result_json", "sse", "stream_events"]

log = logging.getLogger("dexto.server.chat")


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def result_json(result: ChatResult) -> dict[str, Any]:
    """``ChatResult`` → the ``dexto chat --json`` shape, plus tool calls and warnings."""
    return {
        **result.to_json(),
        "toolCalls": [c.to_json() for c in result.tool_calls],
        "warnings": list(result.warnings),
    }


def _event_bytes(ev: StreamEvent, on_done: Callable[[dict[str, Any]], None]) -> bytes:
    if isinstance(ev, TextDelta):
        return sse("delta", {"text": ev.text})
    if isinstance(ev, ToolCallDelta):
        return sse(
            "tool_call",
            {"index": ev.index, "id": ev.id, "name": ev.name, "arguments": ev.arguments},
        )
    final = result_json(ev.result)
    on_done(final)
    return sse("done", final)


async def stream_events(
    planned: dict[str, Any],
    events: AsyncIterator[StreamEvent],
    on_done: Callable[[dict[str, Any]], None],
) -> AsyncIterator[bytes]:
    yield sse("route", {"planned": planned})
    try:
        async for ev in events:
            yield _event_bytes(ev, on_done)
    except DextoError as err:
        yield sse("error", err.to_dict())
    except Exception as exc:  # a stream must end with an event, never a torn connection
        log.warning("chat stream failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        yield sse(
            "error",
            {
                "error": {
                    "code": "UPSTREAM_ERROR",
                    "message": f"the request failed ({type(exc).__name__})",
                    "fix": "try again; see the server log",
                }
            },
        )
