"""The server's view of local state, rebuilt only when a file it reads changes.

A *snapshot* is the agent file, the routing context and the local state built by
``build_context`` — the same function the CLI uses. Its fingerprint is the ``stat`` of every file
that feeds the catalog (agent, auth store, preferences, custom models, marketplace cache) plus a
one-minute clock bucket (the marketplace cache turns stale with time). The catalog JSON is
rendered once per snapshot and served as bytes.

A broken agent file does not break the snapshot: the catalog is built without the agent
(``agent`` is None, ``agent_error`` says why), so the page can show the error and the picker can
still write a selection that repairs the file. Only routes that run the agent call
``require_agent``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dexto.config.agent import AgentConfig, load_agent_file
from dexto.errors import DextoError
from dexto.llm.catalog import build_catalog
from dexto.llm.context import LocalState, build_context
from dexto.llm.marketplace import load_marketplace
from dexto.llm.routing import RoutingContext
from dexto.server.errors import ApiError, LocalStateFailure
from dexto.server.settings import ServerSettings

__all__ = ["REPAIR_FIX", "LocalView", "Snapshot", "agent_fix"]

Fingerprint = tuple[object, ...]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class Snapshot:
    fingerprint: Fingerprint
    agent: AgentConfig | None
    ctx: RoutingContext
    local: LocalState
    agent_error: DextoError | None = None
    _catalog: bytes | None = None
    _by_prefer: dict[str, RoutingContext] = field(default_factory=dict)

    def require_agent(self) -> AgentConfig:
        """The agent; a broken agent file is a 409 carrying the file's own error and fix."""
        if self.agent is None:
            err = self.agent_error
            raise ApiError(
                err.code if err else "INVALID_CONFIG",
                err.message if err else "the agent file could not be read",
                fix=agent_fix(err) if err else "",
                status=409,
            )
        return self.agent


_REPAIRABLE = ("llm.provider", "llm.model")
REPAIR_FIX = (
    "pick a model in the list (POST /llm/switch): it rewrites llm.provider and "
    "llm.model in the agent file and keeps its comments"
)


def agent_fix(err: DextoError) -> str:
    """The agent-file error's fix, led by the switch when that alone repairs the file."""
    if getattr(err, "field", None) in _REPAIRABLE:
        return f"{REPAIR_FIX}; or {err.fix}" if err.fix else REPAIR_FIX
    return err.fix


class LocalView:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None

    def watched(self) -> tuple[Path, ...]:
        p = self.paths
        return (
            self.settings.agent_path,
            p.auth,
            p.preferences,
            p.custom_models,
            p.marketplace_cache,
        )

    def fingerprint(self) -> Fingerprint:
        return (*(_stat(path) for path in self.watched()), int(time.time() // 60))

    def snapshot(self) -> Snapshot:
        fp = self.fingerprint()
        snap = self._snap
        if snap is not None and snap.fingerprint == fp:
            return snap
        with self._lock:
            if self._snap is None or self._snap.fingerprint != fp:
                self._snap = self._build(fp)
            return self._snap

    def _build(self, fp: Fingerprint) -> Snapshot:
        agent: AgentConfig | None = None
        agent_error: DextoError | None = None
        try:
            agent = load_agent_file(self.settings.agent_path)
        except DextoError as err:
            agent_error = err
        try:
            market = load_marketplace(self.paths)
            ctx, local = build_context(
                env=self.settings.env, agent=agent, paths=self.paths, marketplace=market
            )
        except DextoError as err:
            raise LocalStateFailure(err) from None
        return Snapshot(fp, agent, ctx, local, agent_error)

    def context(self, prefer: str | None = None) -> RoutingContext:
        """The routing context, with a per-request ``prefer`` override when given (SPEC §5.2)."""
        snap = self.snapshot()
        if prefer is None:
            return snap.ctx
        if prefer not in snap._by_prefer:
            try:
                ctx, _ = build_context(
                    env=self.settings.env,
                    agent=snap.agent,
                    paths=self.paths,
                    prefer=prefer,
                    marketplace=snap.ctx.marketplace(),
                )
            except DextoError as err:
                raise LocalStateFailure(err) from None
            snap._by_prefer[prefer] = ctx
        return snap._by_prefer[prefer]

    def catalog_bytes(self) -> bytes:
        snap = self.snapshot()
        if snap._catalog is None:
            body = build_catalog(snap.ctx, snap.local.preferences, snap.local.custom_models)
            snap._catalog = json.dumps(body, separators=(",", ":")).encode()
        return snap._catalog

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None
