"""Where dexto keeps its files. ``DEXTO_HOME`` (default ``~/.dexto``) is the only root."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DextoPaths", "dexto_home"]


def dexto_home(env: Mapping[str, str] | None = None) -> Path:
    """Return ``$DEXTO_HOME`` or ``~/.dexto``; never creates it."""
    env = os.environ if env is None else env
    raw = env.get("DEXTO_HOME", "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".dexto"


class DextoPaths:
    """The layout of ``$DEXTO_HOME`` (SPEC §9)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DextoPaths:
        return cls(dexto_home(env))

    @property
    def auth(self) -> Path:
        return self.home / "auth.json"

    @property
    def preferences(self) -> Path:
        return self.home / "preferences.yml"

    @property
    def custom_models(self) -> Path:
        return self.home / "models" / "custom-models.json"

    @property
    def agents_dir(self) -> Path:
        return self.home / "agents"

    @property
    def agents_registry(self) -> Path:
        return self.home / "agents" / "registry.json"

    def agent_file(self, agent_id: str) -> Path:
        return self.home / "agents" / agent_id / f"{agent_id}.yml"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def marketplace_cache(self) -> Path:
        return self.home / "cache" / "openrouter-models.json"

    @property
    def backups_dir(self) -> Path:
        return self.home / "backups"
