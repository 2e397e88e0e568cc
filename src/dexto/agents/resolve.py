"""Which agent file a command uses: the one place ``chat``, ``route`` and ``serve`` decide it.

``--agent`` is a path to an agent YAML file or the id of an agent under ``$DEXTO_HOME/agents``
(a bundled agent that is not installed yet is installed first). Without ``--agent`` and without a
selection, the default agent is used: the ``defaultAgent`` preference, else ``default-agent``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from dexto.agents.bundled import bundled_agent_ids
from dexto.agents.manager import ensure_installed, list_agents
from dexto.config.paths import DextoPaths
from dexto.config.preferences import load_preferences
from dexto.errors import ConfigError, InvalidModelIdError

__all__ = ["DEFAULT_AGENT", "known_agent_ids", "resolve_agent", "unknown_agent_error"]

DEFAULT_AGENT = "default-agent"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def known_agent_ids(paths: DextoPaths) -> tuple[list[str], list[str]]:
    """(installed agent ids, bundled ids not installed yet), each sorted."""
    installed, bundled = [], []
    for status in list_agents(paths):
        if status.state == "not-installed":
            bundled.append(status.id)
        else:
            installed.append(status.id)
    return installed, bundled


def _choices(paths: DextoPaths) -> str:
    installed, bundled = known_agent_ids(paths)
    parts = []
    if installed:
        parts.append("installed: " + ", ".join(installed))
    if bundled:
        parts.append("bundled (installed on first use): " + ", ".join(bundled))
    return "; ".join(parts) or "none"


def unknown_agent_error(paths: DextoPaths, agent_id: str, *, field: str) -> ConfigError:
    """Error for an agent id that is neither installed nor bundled, listing those that are."""
    return ConfigError(
        f"no agent named {agent_id[:64]!r}",
        field=field,
        fix=f"use an agent id ({_choices(paths)}), or see `dexto agents list`",
    )


def _by_id(paths: DextoPaths, agent_id: str) -> Path | None:
    if not _ID.match(agent_id):
        return None
    path = paths.agent_file(agent_id)
    if path.is_file():
        return path
    if agent_id in bundled_agent_ids():
        return ensure_installed(paths, agent_id)
    return None


def _by_path(paths: DextoPaths, agent: str) -> Path:
    path = Path(agent).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        ymls = sorted(p.name for p in path.iterdir() if p.suffix in (".yml", ".yaml"))
        hint = f" (it holds {', '.join(ymls[:5])})" if ymls else ""
        raise ConfigError(
            "is a directory, not an agent file",
            file=str(path),
            field="--agent",
            fix=f"pass the agent's .yml file itself{hint}, or an agent id ({_choices(paths)})",
        )
    found = _by_id(paths, agent)
    if found is not None:
        return found
    raise ConfigError(
        "no such agent file or agent id",
        file=str(path),
        field="--agent",
        fix=f"pass an existing agent YAML path, or an agent id ({_choices(paths)})",
    )


def resolve_agent(
    agent: str | None,
    env: Mapping[str, str],
    *,
    selection_given: bool,
    install_default: bool = False,
) -> Path | None:
    """The agent file to use, or None when a selection alone is enough.

    ``agent`` (``--agent``) wins. Otherwise, when no selection is given, the default agent:
    the ``defaultAgent`` preference (an error if it names no agent), else ``default-agent`` when
    it is installed — or always, installing it, when ``install_default``. With neither a
    selection nor any agent, raises ``InvalidModelIdError`` naming both ways out.
    """
    paths = DextoPaths.from_env(env)
    if agent:
        return _by_path(paths, agent)
    if selection_given:
        return None
    preferred = load_preferences(paths.preferences).defaultAgent
    if preferred:
        found = _by_id(paths, preferred)
        if found is None:
            raise ConfigError(
                f"defaultAgent names {preferred[:64]!r}, which is not an agent",
                file=str(paths.preferences),
                field="defaultAgent",
                fix=f"`dexto prefs set defaultAgent ID` ({_choices(paths)}) or "
                "`dexto prefs unset defaultAgent`",
            )
        return found
    default = paths.agent_file(DEFAULT_AGENT)
    if default.is_file():
        return default
    if install_default:
        return ensure_installed(paths, DEFAULT_AGENT)
    raise InvalidModelIdError(
        "no selection given, and no default agent is set up",
        field="selection",
        fix="pass provider/model (e.g. anthropic/claude-sonnet-4-5-20250929), "
        "--agent FILE, or run `dexto setup` once to set up the default agent",
    )
