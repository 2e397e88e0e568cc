"""``open_model``: selection (or agent file) → routing decision → a ready ``Model``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from dexto.auth.refresh import ensure_fresh
from dexto.auth.store import Entry
from dexto.config.agent import AgentConfig, load_agent_file
from dexto.errors import InvalidModelIdError
from dexto.llm.context import build_context
from dexto.llm.execution._model import Model
from dexto.llm.execution._outcome import Outcome, after_output_fix, exhausted_fix_for
from dexto.llm.execution._target import Target
from dexto.llm.execution._targets import (
    UnusableFallback,
    gateway_headers,
    primary_target,
    usable_fallback,
)
from dexto.llm.routing import decide
from dexto.llm.selection import Selection, parse_selection

__all__ = ["DEFAULT_TIMEOUT_S", "open_model"]

DEFAULT_TIMEOUT_S = 600.0


def _agent(agent: str | Path | AgentConfig | None) -> AgentConfig | None:
    if agent is None or isinstance(agent, AgentConfig):
        return agent
    return load_agent_file(Path(agent))


def _selection(selection: str | Selection | None, agent: AgentConfig | None) -> Selection:
    if isinstance(selection, Selection):
        return selection
    if selection:
        return parse_selection(selection)
    if agent is not None:
        return agent.llm.selection
    raise InvalidModelIdError(
        "no selection given",
        field="selection",
        fix="pass provider/model, e.g. anthropic/claude-sonnet-4-5-20250929, or an agent file",
    )


def _defaults(agent: AgentConfig | None) -> dict[str, Any]:
    if agent is None:
        return {}
    out: dict[str, Any] = {}
    if agent.llm.maxOutputTokens is not None:
        out["max_tokens"] = agent.llm.maxOutputTokens
    if agent.llm.temperature is not None:
        out["temperature"] = agent.llm.temperature
    return out


def open_model(
    selection: str | Selection | None = None,
    *,
    agent: str | Path | AgentConfig | None = None,
    prefer: str | None = None,
    env: Mapping[str, str] | None = None,
    session_id: str | None = None,
    source: str = "library",
    timeout: float = DEFAULT_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
    async_transport: httpx.AsyncBaseTransport | None = None,
) -> Model:
    """Decide the route for ``selection`` (or the agent file's ``llm``) and bind a ``Model``.

    ``env`` defaults to ``os.environ``; ``prefer`` (``"dexto"``/``"direct"``) overrides the
    policy for this model; ``session_id`` and ``source`` are sent to the gateway as
    ``X-Dexto-Session-ID``/``X-Dexto-Source``. Raises the typed errors of ``dexto route``
    (``NoCredentialsError``, ``ConfigError`` …) when the selection cannot be routed.
    ``transport``/``async_transport`` replace httpx's network transports (tests, proxies).
    """
    env = dict(os.environ) if env is None else dict(env)
    agent_cfg = _agent(agent)
    sel = _selection(selection, agent_cfg)
    ctx, local = build_context(env=env, agent=agent_cfg, prefer=prefer)
    decision = decide(sel, ctx)

    def store(name: str) -> Entry | None:
        # OAuth entries are refreshed (under the store's lock) before they expire.
        return ensure_fresh(local.paths.auth, name)

    headers = gateway_headers(session_id or "sess_" + uuid.uuid4().hex, source)
    primary = primary_target(decision, env, store, headers)
    found = usable_fallback(decision, env, store) if decision.route == "dexto" else None
    fallback = found if isinstance(found, Target) else None
    unusable = found if isinstance(found, UnusableFallback) else None
    exhausted_fix = exhausted_fix_for(decision, ctx)
    if unusable is not None:  # the key is needed only on a 402: warn now, raise then
        exhausted_fix = unusable.error.fix
    outcome = Outcome(
        decision,
        local.preferences.lowCreditsWarningUsd,
        exhausted_fix,
        unusable.warning if unusable is not None else "",
        after_output_fix(decision) if unusable is None else "",
    )
    return Model(
        decision,
        primary,
        fallback,
        outcome,
        fallback_error=unusable.error if unusable is not None else None,
        env=env,
        defaults=_defaults(agent_cfg),
        timeout=timeout,
        transport=transport,
        async_transport=async_transport,
    )
