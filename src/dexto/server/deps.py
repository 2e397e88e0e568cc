"""Per-app objects reachable from a request (no module-level globals)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dexto.server.credits import CreditsTracker
from dexto.server.settings import ServerSettings
from dexto.server.state import LocalView

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    settings: ServerSettings
    view: LocalView
    credits: CreditsTracker
    session_id: str


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.dexto
    return state
