"""Install, update and compare bundled agents without ever losing a user's edits (SPEC §9).

``$DEXTO_HOME/agents/registry.json``::

    {"version": 1, "agents": {"default-agent": {"bundledHash": "sha256:…",
                                                "installedAt": "2026-05-01T12:00:00Z"}}}

``bundledHash`` is the hash of the bundled file that was installed. A copy whose current hash
equals it is *unmodified*; when the bundled file has since changed, ``update`` replaces that copy
(atomically, with a timestamped backup) and records the new hash. A copy whose hash differs is
*modified*: it is reported and left alone. All changes run under the registry's lock; a corrupt
registry is an error naming the file and the fix, and is never overwritten.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dexto.agents.bundled import bundled_agent_ids, bundled_text, content_hash
from dexto.config.files import atomic_write, backup_file, file_lock, path_error
from dexto.config.paths import DextoPaths
from dexto.errors import ConfigError

__all__ = [
    "AgentStatus",
    "Change",
    "agent_status",
    "diff_agent",
    "ensure_installed",
    "install_agent",
    "list_agents",
    "read_registry",
    "update_agents",
]

State = Literal["not-installed", "up-to-date", "update-available", "modified", "custom"]
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REGISTRY_FIX = (
    "repair the JSON, or move the file away and run `dexto agents install ID` to "
    "record the agents again"
)


@dataclass(frozen=True)
class AgentStatus:
    id: str
    state: State
    path: Path
    bundled: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "path": str(self.path), "bundled": self.bundled}


@dataclass(frozen=True)
class Change:
    """What ``install``/``update`` did to one agent."""

    id: str
    action: Literal[
        "installed", "replaced", "updated", "unchanged", "kept-modified", "not-installed"
    ]
    path: Path
    backup: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "path": str(self.path),
            "backup": str(self.backup) if self.backup else None,
        }


def _check_bundled(agent_id: str) -> str:
    if not _ID.match(agent_id) or agent_id not in bundled_agent_ids():
        raise ConfigError(
            f"no bundled agent named {agent_id[:64]!r}",
            field="agent",
            fix="use one of: " + ", ".join(bundled_agent_ids()),
        )
    return agent_id


def read_registry(paths: DextoPaths) -> dict[str, dict[str, Any]]:
    """The ``agents`` mapping of registry.json (empty when absent); corrupt → ConfigError."""
    path = paths.agents_registry
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", file=str(path), fix=REGISTRY_FIX) from None
    except OSError as exc:
        raise path_error(path, exc, reading=True) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg})", file=str(path), line=exc.lineno, fix=REGISTRY_FIX
        ) from None
    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, dict):
        raise ConfigError(
            'expected {"version": 1, "agents": {...}}',
            file=str(path),
            field="agents",
            fix=REGISTRY_FIX,
        )
    for agent_id, rec in agents.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("bundledHash"), str):
            raise ConfigError(
                "each agent needs a bundledHash string",
                file=str(path),
                field=f"agents.{agent_id}.bundledHash",
                fix=REGISTRY_FIX,
            )
    return agents


def _write_registry(paths: DextoPaths, agents: dict[str, dict[str, Any]]) -> None:
    path = paths.agents_registry
    atomic_write(
        path, json.dumps({"version": 1, "agents": agents}, indent=2) + "\n", backup=path.exists()
    )


def _file_hash(path: Path) -> str | None:
    try:
        return content_hash(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise path_error(path, exc, reading=True) from None


def _state(agent_id: str, current: str | None, record: dict[str, Any] | None) -> State:
    if agent_id not in bundled_agent_ids():
        return "custom"
    bundled = content_hash(bundled_text(agent_id))
    if current is None:
        return "not-installed"
    if current == bundled:
        return "up-to-date"
    if record is not None and current == record["bundledHash"]:
        return "update-available"
    return "modified"


def agent_status(paths: DextoPaths, agent_id: str) -> AgentStatus:
    path = paths.agent_file(agent_id)
    state = _state(agent_id, _file_hash(path), read_registry(paths).get(agent_id))
    return AgentStatus(agent_id, state, path, state != "custom")


def list_agents(paths: DextoPaths) -> list[AgentStatus]:
    """Bundled agents (installed or not) and any user agents under ``agents/<id>/<id>.yml``."""
    ids = set(bundled_agent_ids())
    if paths.agents_dir.is_dir():
        ids |= {
            d.name
            for d in paths.agents_dir.iterdir()
            if d.is_dir() and (d / f"{d.name}.yml").is_file()
        }
    registry = read_registry(paths)
    out = []
    for agent_id in sorted(ids):
        path = paths.agent_file(agent_id)
        state = _state(agent_id, _file_hash(path), registry.get(agent_id))
        out.append(AgentStatus(agent_id, state, path, state != "custom"))
    return out


def _record(agent_id: str) -> dict[str, Any]:
    return {
        "bundledHash": content_hash(bundled_text(agent_id)),
        "installedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def install_agent(paths: DextoPaths, agent_id: str, *, force: bool = False) -> Change:
    """Install a bundled agent. An existing different copy is kept unless ``force`` (backed up)."""
    _check_bundled(agent_id)
    path = paths.agent_file(agent_id)
    with file_lock(paths.agents_registry):
        registry = read_registry(paths)
        current = _file_hash(path)
        bundled = bundled_text(agent_id)
        if current == content_hash(bundled):
            action: Any = "unchanged"
            backup = None
        elif current is not None and not force:
            raise ConfigError(
                "a different copy is already installed",
                file=str(path),
                fix=f"see the changes with `dexto agents diff {agent_id}`; "
                f"`dexto agents install {agent_id} --force` replaces it "
                "(a timestamped backup is kept)",
            )
        else:
            backup = backup_file(path)
            atomic_write(path, bundled)
            action = "replaced" if current is not None else "installed"
        registry[agent_id] = _record(agent_id)
        _write_registry(paths, registry)
    return Change(agent_id, action, path, backup)


def update_agents(paths: DextoPaths, ids: list[str] | None = None) -> list[Change]:
    """Replace unmodified installed copies whose bundled file changed; keep modified ones."""
    targets = [_check_bundled(i) for i in ids] if ids else bundled_agent_ids()
    changes: list[Change] = []
    with file_lock(paths.agents_registry):
        registry = read_registry(paths)
        before = dict(registry)
        for agent_id in targets:
            changes.append(_update_one(paths, agent_id, registry))
        if registry != before:
            _write_registry(paths, registry)
    return changes


def _update_one(paths: DextoPaths, agent_id: str, registry: dict[str, dict[str, Any]]) -> Change:
    path = paths.agent_file(agent_id)
    state = _state(agent_id, _file_hash(path), registry.get(agent_id))
    if state == "not-installed":
        return Change(agent_id, "not-installed", path)
    if state == "modified":
        return Change(agent_id, "kept-modified", path)
    if state == "up-to-date":
        if agent_id not in registry:
            registry[agent_id] = _record(agent_id)
        return Change(agent_id, "unchanged", path)
    backup = backup_file(path)
    atomic_write(path, bundled_text(agent_id))
    registry[agent_id] = _record(agent_id)
    return Change(agent_id, "updated", path, backup)


def diff_agent(paths: DextoPaths, agent_id: str) -> str:
    """Unified diff from the installed copy to the bundled file ('' when identical)."""
    import difflib

    _check_bundled(agent_id)
    path = paths.agent_file(agent_id)
    if not path.exists():
        raise ConfigError(
            "the agent is not installed",
            file=str(path),
            fix=f"install it with `dexto agents install {agent_id}`",
        )
    try:
        mine = path.read_text("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise ConfigError(
            "file is not UTF-8 text",
            file=str(path),
            fix=f"repair it, or reinstall with `dexto agents install {agent_id} --force`",
        ) from None
    theirs = bundled_text(agent_id).decode("utf-8").splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(mine, theirs, f"installed/{agent_id}.yml", f"bundled/{agent_id}.yml")
    )


def ensure_installed(paths: DextoPaths, agent_id: str = "default-agent") -> Path:
    """The agent's file, installing the bundled copy first if it is missing."""
    path = paths.agent_file(agent_id)
    if not path.exists():
        install_agent(paths, agent_id)
    return path
