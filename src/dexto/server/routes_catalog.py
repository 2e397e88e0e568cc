"""``GET /llm/catalog`` (exactly ``dexto models --json``) and ``GET /llm/validate``."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from dexto.llm.catalog import build_catalog
from dexto.llm.marketplace import MarketplaceCatalog, ValidationStatus
from dexto.llm.providers import get_provider
from dexto.llm.selection import validate_model_id
from dexto.server.deps import AppState, app_state

__all__ = ["router"]

router = APIRouter(prefix="/llm", tags=["catalog"])
State = Annotated[AppState, Depends(app_state)]


class Validation(BaseModel):
    provider: str
    model: str
    status: ValidationStatus
    marketplaceState: str
    marketplaceSource: str
    message: str


@router.get(
    "/catalog",
    summary="The merged catalog, as `dexto models --json`",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def catalog(st: State, provider: str | None = None, search: str | None = None) -> Response:
    if provider is None and not search:
        body = st.view.catalog_bytes()
    else:
        if provider is not None:
            provider = get_provider(provider).id
        snap = st.view.snapshot()
        answer = build_catalog(
            snap.ctx,
            snap.local.preferences,
            snap.local.custom_models,
            provider=provider,
            search=search,
        )
        body = json.dumps(answer, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


_MESSAGES = {
    "known": "listed in the model catalog",
    "unknown": "not in the marketplace list; check the ID (it is sent exactly as typed)",
    "unverified": "no list to check it against right now; it can still be used",
}


@router.get(
    "/validate",
    response_model=Validation,
    summary="Is this model ID known? (known | unknown | unverified)",
)
def validate(
    st: State,
    provider: Annotated[str, Query(min_length=1)],
    model: Annotated[str, Query(min_length=1)],
) -> Validation:
    provider = get_provider(provider).id
    validate_model_id(model)
    ctx = st.view.context()
    market = ctx.marketplace()
    status = _status(
        provider,
        model,
        ctx.registry.get(provider, model) is not None,
        ctx.custom_model(provider, model) is not None,
        market,
    )
    message = _MESSAGES[status]
    if provider == "openrouter" and market is not None and market.source == "bundled":
        message += f" (the list bundled with dexto, {market.snapshot_date or 'undated'})"
    return Validation(
        provider=provider,
        model=model,
        status=status,
        marketplaceState=market.state if market else "missing",
        marketplaceSource=market.source if market else "none",
        message=message,
    )


def _status(
    provider: str, model: str, curated: bool, custom: bool, market: MarketplaceCatalog | None
) -> ValidationStatus:
    """openrouter: the marketplace list decides (§8.2); others: curated or saved is known
    (both looked up ignoring case)."""
    if provider == "openrouter":
        return "unverified" if market is None else market.status(model)
    return "known" if curated or custom else "unverified"
