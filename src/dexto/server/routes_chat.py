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

__all__ = ["router"]

router = APIRouter(prefix="/llm", tags=["chat"])
State = Annotated[AppState, Depends(app_state)]
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "server-sent events: route, delta*, done | error",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    409: {"description": "NO_CREDENTIALS"},
}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, min_length=1, max_length=100_000)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=200)
    prefer: Literal["dexto", "direct"] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> ChatRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        return self

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


def _open_model(st: AppState, prefer: str | None) -> Model:
    agent = st.view.snapshot().require_agent()
    return open_model(agent.llm.selection, agent=agent, prefer=prefer,
                      env=st.settings.env, session_id=st.session_id, source="server")


async def _closing(model: Model, messages: list[dict[str, str]]) -> AsyncIterator[StreamEvent]:
    try:
        async for ev in model.astream(messages):
            yield ev
    finally:
        await model.aclose()


@router.post("/chat", response_class=StreamingResponse, responses=_SSE_DOC,
             summary="Try the current selection: streams text, then the route taken")
def chat(st: State, body: ChatRequest) -> StreamingResponse:
    agent = st.view.snapshot().require_agent()
    planned = decide(agent.llm.selection, st.view.context(body.prefer)).to_json()
    model = _open_model(st, body.prefer)

    def on_done(final: dict[str, Any]) -> None:
        st.credits.update(final.get("creditsRemaining"))

    return StreamingResponse(stream_events(planned, _closing(model, body.as_messages()), on_done),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
