"""``GET /docs``: Swagger UI for ``/openapi.json``, served from this server (works offline).

The page, its initializer (``static/docs.js``) and Swagger UI's own files (mounted at
``/docs/assets`` from the ``swagger-ui-py`` package) carry no data, so like the main page they
are public; the API calls made from it still need the token when one is configured.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from dexto.server.routes_ui import STATIC_DIR

__all__ = ["DOCS_CSP", "router"]

router = APIRouter(tags=["web ui"])

# Swagger UI sets inline styles; scripts stay same-origin only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


@router.get("/docs", include_in_schema=False)
def docs() -> Response:
    return FileResponse(
        STATIC_DIR / "docs.html",
        media_type="text/html",
        headers={
            "Content-Security-Policy": DOCS_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
