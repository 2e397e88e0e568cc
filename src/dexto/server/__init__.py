"""The local agent server and web UI (``dexto serve``; SPEC §11)."""

from __future__ import annotations

from dexto.server.app import create_app
from dexto.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
