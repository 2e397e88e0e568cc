"""The app factory: ``create_app(settings)`` builds one server for one agent, no globals."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dexto import __version__
from dexto.server import (
    routes_catalog,
    routes_chat,
    routes_custom,
    routes_docs,
    routes_keys,
    routes_selection,
    routes_ui,
)
from dexto.server.credits import CreditsTracker, fetch_balance
from dexto.server.deps import AppState
from dexto.server.errors import install_error_handlers
from dexto.server.guard import Guard
from dexto.server.openapi import DOCS_ASSETS, install_openapi
from dexto.server.refresher import MarketplaceRefresher
from dexto.server.settings import ServerSettings
from dexto.server.state import LocalView

__all__ = ["create_app"]

DESCRIPTION = (
    "Local agent server: the model catalog with routing state, the agent's selection "
    "and its routing decision, custom models, provider keys and a chat try-out. "
    'Errors are `{"error": {"code", "message", "fix"}}`.'
)


def create_app(settings: ServerSettings) -> FastAPI:
    refresher = (
        MarketplaceRefresher(settings.paths, settings.env, settings.refresh_interval_s)
        if settings.refresh_marketplace
        else None
    )

    credits = CreditsTracker()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if refresher is not None:
            refresher.start()
        # the balance shown before the first chat: asked once, in the background
        threading.Thread(
            target=lambda: credits.update(fetch_balance(settings.paths, settings.env)),
            name="dexto-balance",
            daemon=True,
        ).start()
        try:
            yield
        finally:
            if refresher is not None:
                refresher.stop()

    app = FastAPI(
        title="Dexto agent server",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.dexto = AppState(
        settings=settings,
        view=LocalView(settings),
        credits=credits,
        session_id=f"serve-{uuid.uuid4()}",
    )
    install_error_handlers(app)
    install_openapi(app, token=settings.token is not None)
    for module in (
        routes_catalog,
        routes_selection,
        routes_custom,
        routes_keys,
        routes_chat,
        routes_ui,
        routes_docs,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=routes_ui.STATIC_DIR), name="static")
    if DOCS_ASSETS is not None:
        app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.add_middleware(
        Guard,
        token=settings.token,
        allowed_hosts=settings.allowed_hosts(),
        max_body=settings.max_body_bytes,
    )
    return app
