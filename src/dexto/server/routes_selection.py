"""``GET /llm/current`` and ``POST /llm/switch``: the agent's selection and its routing decision.

Shape (both endpoints)::

    {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
     "decision": <the `dexto route --json` object> | null,
     "error": null | {"code", "message", "fix"},      # why there is no decision
     "creditsRemaining": null | {"usd": "4.20", "asOf": <epoch s>},
     "agentFile": "/path/to/agent.yml"}

``decision`` is null exactly when ``error`` is set (e.g. ``NO_CREDENTIALS``): the selection is
still reported, with status 200, because it is a state to show, not a failed request.

A broken agent file is such a state too: ``agentFileError`` is true, ``error`` is the file's own
error, ``provider``/``model`` are whatever strings the file holds ("" when unreadable), and when
the error is in ``llm.provider`` or ``llm.model`` the fix names ``POST /llm/switch`` (the page's
picker), which rewrites exactly those two keys and keeps the rest of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from dexto.config._yaml import read_yaml
from dexto.errors import DextoError
from dexto.llm.routing import decide
from dexto.server.deps import AppState, app_state
from dexto.server.openapi import MODEL_ID_SCHEMA, PROVIDER_IDS, provider_schema
from dexto.server.state import agent_fix
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
    agentFileError: bool = False


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(json_schema_extra=provider_schema(PROVIDER_IDS))
    model: str = Field(json_schema_extra=MODEL_ID_SCHEMA)


def _raw_selection(path: Path) -> tuple[str, str]:
    """The provider and model strings as written in the agent file, "" where unreadable."""
    try:
        doc = read_yaml(path, fix="")
    except DextoError:
        return "", ""
    llm = doc.get("llm") if isinstance(doc, dict) else None
    llm = llm if isinstance(llm, dict) else {}
    return (str(llm.get("provider") or ""), str(llm.get("model") or ""))


def _agent_problem(st: AppState, err: DextoError) -> Current:
    provider, model = _raw_selection(st.settings.agent_path)
    return Current(
        provider=provider,
        model=model,
        decision=None,
        error=ErrorDetail(code=err.code, message=err.message, fix=agent_fix(err)),
        creditsRemaining=st.credits.to_json(),
        agentFile=str(st.settings.agent_path),
        agentFileError=True,
    )


def current_answer(st: AppState, prefer: str | None = None) -> Current:
    snap = st.view.snapshot()
    if snap.agent is None:
        assert snap.agent_error is not None
        return _agent_problem(st, snap.agent_error)
    ctx = st.view.context(prefer)
    sel = snap.agent.llm.selection
    decision: dict[str, Any] | None = None
    error: ErrorDetail | None = None
    try:
        decision = decide(sel, ctx).to_json()
    except DextoError as err:
        error = ErrorDetail(**err.to_dict()["error"])
    return Current(
        provider=sel.provider,
        model=sel.model,
        decision=decision,
        error=error,
        creditsRemaining=st.credits.to_json(),
        agentFile=str(st.settings.agent_path),
    )


@router.get(
    "/current", response_model=Current, summary="The agent's selection and its routing decision"
)
def current(st: State, prefer: Prefer | None = None) -> Current:
    return current_answer(st, prefer)


@router.post(
    "/switch",
    response_model=Current,
    summary="Change the selection (validated; persisted atomically with a backup)",
)
def switch(st: State, body: SwitchRequest) -> Current:
    switch_selection(st.settings.agent_path, body.provider, body.model)
    st.view.invalidate()
    return current_answer(st)
