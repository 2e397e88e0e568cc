"""``POST /llm/chat``: run one conversation through the agent's current selection (SSE).

The routing decision is checked before the stream opens, so "no credentials" is a plain JSON
409 rather than a stream. The model runs through the execution library (``open_model``), which
owns the 402 → own-key fallback; the final ``done`` event reports the route that answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dexto.llm.execution import Model, StreamEvent, open_model
from dexto.llm.routing import decide
from dexto.server.chat_stream import stream_events
from dexto.server.deps import AppState, app_state
from dexto.server.openapi import WS, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/llm", tags=["chat"])
State = Annotated[AppState, Depends(app_state)]
#: One server-sent event (OpenAPI 3.1: the ``text/event-stream`` schema describes each event).
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["route", "delta", "tool_call", "done", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "route: {planned}; delta: {text}; tool_call: {index, id, name, "
            "arguments}; done: {text, route, usage, creditsRemaining, "
            "toolCalls, warnings}; error: {error: {code, message, fix}}",
        },
    },
}
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events: route, delta*, done | error",
        "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
    },
    **error_responses(409, 501),
}


def _exactly_one_input(schema: dict[str, Any]) -> None:
    """Document the rule ``_one_input`` enforces: exactly one of prompt and messages."""
    props = schema["properties"]
    props["prompt"] = {
        "type": "string",
        "minLength": 1,
        "maxLength": 100_000,
        "pattern": f"[^{WS}]",
        "description": "one user message (not blank)",
    }
    messages = props["messages"]
    props["messages"] = next(
        s for s in messages.get("anyOf", [messages]) if s.get("type") == "array"
    )
    schema["oneOf"] = [{"required": ["prompt"]}, {"required": ["messages"]}]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_input)

    prompt: str | None = Field(default=None, min_length=1, max_length=100_000)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=200)
    prefer: Literal["dexto", "direct"] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> ChatRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt is blank")
        return self

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


def _open_model(st: AppState, prefer: str | None) -> Model:
    agent = st.view.snapshot().require_agent()
    return open_model(
        agent.llm.selection,
        agent=agent,
        prefer=prefer,
        env=st.settings.env,
        session_id=st.session_id,
        source="server",
    )


async def _closing(model: Model, messages: list[dict[str, str]]) -> AsyncIterator[StreamEvent]:
    try:
        async for ev in model.astream(messages):
            yield ev
    finally:
        await model.aclose()


@router.post(
    "/chat",
    response_class=StreamingResponse,
    responses=_SSE_DOC,
    summary="Try the current selection: streams text, then the route taken",
)
def chat(st: State, body: ChatRequest) -> StreamingResponse:
    agent = st.view.snapshot().require_agent()
    planned = decide(agent.llm.selection, st.view.context(body.prefer)).to_json()
    model = _open_model(st, body.prefer)

    def on_done(final: dict[str, Any]) -> None:
        st.credits.update(final.get("creditsRemaining"))

    return StreamingResponse(
        stream_events(planned, _closing(model, body.as_messages()), on_done),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
