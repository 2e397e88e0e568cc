"""``GET /llm/current`` and ``POST /llm/switch``: the agent's selection and its routing decision.

Shape (both endpoints)::

    {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
     "decision": <the `dexto route --json` object> | null,
     "error": null | {"code", "message", "fix"},      # why there is no decision
     "creditsRemaining": null | {"usd": "4.20", "asOf": <epoch s>},
     "agentFile": "/path/to/agent.yml"}

``decision`` is null exactly when ``error`` is set (e.g. ``NO_CREDENTIALS``): the selection is
still reported, with status 200, because it is a state to show, not a failed request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from dexto.errors import DextoError
from dexto.llm.routing import decide
from dexto.server.deps import AppState, app_state
from dexto.server.switch import switch_selection

__all__ = ["current_answer", "router"]

router = APIRouter(prefix="/llm", tags=["selection"])
State = Annotated[AppState, Depends(app_state)]
Prefer = Literal["dexto", "direct"]


class ErrorDetail(BaseModel):
    code: str
    message: str
    fix: str


class Current(BaseModel):
    provider: str
    model: str
    decision: dict[str, Any] | None
    error: ErrorDetail | None
    creditsRemaining: dict[str, Any] | None
    agentFile: str


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str


def current_answer(st: AppState, prefer: str | None = None) -> Current:
    snap = st.view.snapshot()
    ctx = st.view.context(prefer)
    sel = snap.agent.llm.selection
    decision: dict[str, Any] | None = None
    error: ErrorDetail | None = None
    try:
        decision = decide(sel, ctx).to_json()
    except DextoError as err:
        error = ErrorDetail(**err.to_dict()["error"])
    return Current(provider=sel.provider, model=sel.model,
                   decision=decision, error=error, creditsRemaining=st.credits.to_json(),
                   agentFile=str(st.settings.agent_path))


@router.get("/current", response_model=Current,
            summary="The agent's selection and its routing decision")
def current(st: State, prefer: Prefer | None = None) -> Current:
    return current_answer(st, prefer)


@router.post("/switch", response_model=Current,
             summary="Change the selection (validated; persisted atomically with a backup)",
             responses={400: {"description": "invalid selection, e.g. PROVIDER_NOT_ALLOWED"}})
def switch(st: State, body: SwitchRequest) -> Current:
    switch_selection(st.settings.agent_path, body.provider, body.model)
    st.view.invalidate()
    return current_answer(st)
