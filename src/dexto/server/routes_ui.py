"""The web page (``/`` and ``/static/*``) and ``GET /ui/meta``: display facts the page needs.

``/ui/meta`` carries labels and provider facts from the provider table (badge words, which
providers take a pasted key, which need a base URL). It holds no routing rule: routes and
credentials come only from ``GET /llm/catalog`` and ``GET /llm/current``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from dexto import __version__
from dexto.config.custom_models import CUSTOM_MODEL_PROVIDERS
from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS
from dexto.presentation import BADGES
from dexto.server.deps import AppState, app_state
from dexto.server.routes_keys import accepts_stored_key

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter(tags=["web ui"])
State = Annotated[AppState, Depends(app_state)]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class UiMeta(BaseModel):
    version: str
    badges: dict[str, str]
    providers: dict[str, dict[str, Any]]
    customModelProviders: list[str]
    tokenRequired: bool


def _provider_facts() -> dict[str, dict[str, Any]]:
    return {
        pid: {
            "name": p.name,
            "acceptsKey": accepts_stored_key(p),
            "keyEnv": p.env_vars[0] if p.env_vars else None,
            "requiresBaseURL": p.requires_base_url,
            "requiresFilePath": p.wire == "local",
        }
        for pid, p in PROVIDERS.items()
        if pid != INTERNAL_PROVIDER
    }


@router.get("/ui/meta", response_model=UiMeta, summary="Labels and provider facts for the page")
def meta(st: State) -> UiMeta:
    return UiMeta(
        version=__version__,
        badges=dict(BADGES),
        providers=_provider_facts(),
        customModelProviders=list(CUSTOM_MODEL_PROVIDERS),
        tokenRequired=st.settings.token is not None,
    )


@router.get("/", include_in_schema=False)
def page() -> Response:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
