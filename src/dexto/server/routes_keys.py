"""``POST /llm/keys``: store a provider key in the auth store (for the page's key dialog).

The key is written with the auth store's own locked 0600 writer and is never echoed: the answer
carries only the source name and the provider's new routing state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dexto.auth.credentials import accepts_pasted_key as accepts_stored_key
from dexto.auth.store import ApiEntry, set_entry
from dexto.errors import DextoError, ProviderNotAllowedError
from dexto.llm.providers import (
    INTERNAL_PROVIDER,
    PROVIDERS,
    Provider,
    canonical_provider_id,
    get_provider,
)
from dexto.llm.routing import provider_state
from dexto.server.deps import AppState, app_state
from dexto.server.errors import ApiError, LocalStateFailure
from dexto.server.openapi import WS

__all__ = ["accepts_stored_key", "router"]

router = APIRouter(prefix="/llm", tags=["credentials"])
State = Annotated[AppState, Depends(app_state)]


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    provider: str = Field(
        json_schema_extra={
            "enum": [
                pid
                for pid, p in PROVIDERS.items()
                if pid != INTERNAL_PROVIDER and accepts_stored_key(p)
            ]
        }
    )
    key: SecretStr = Field(
        min_length=8, max_length=4096, json_schema_extra={"pattern": rf"^[^{WS}\x00-\x1f]+$"}
    )

    @field_validator("key")
    @classmethod
    def _no_spaces(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if raw != raw.strip() or any(c.isspace() or ord(c) < 32 for c in raw):
            raise ValueError("the key contains spaces or control characters")
        return v


class KeyStored(BaseModel):
    provider: str
    stored: bool
    source: str
    state: dict[str, Any]


def _check_provider(provider: str) -> Provider:
    if canonical_provider_id(provider) == INTERNAL_PROVIDER:
        raise ProviderNotAllowedError(
            "Dexto keys are not stored through the provider key dialog",
            field="provider",
            fix="run `dexto login` (or `dexto login --api-key KEY`)",
        )
    p = get_provider(provider)
    if not accepts_stored_key(p):
        raise ApiError(
            "INVALID_REQUEST",
            f"{p.name} does not take a pasted key",
            fix="see the provider's fix in GET /llm/catalog",
        )
    return p


@router.post(
    "/keys",
    response_model=KeyStored,
    summary="Store a provider API key in the auth store (never echoed)",
)
def store_key(st: State, body: KeyRequest) -> KeyStored:
    p = _check_provider(body.provider)
    try:
        set_entry(st.view.paths.auth, p.id, ApiEntry(type="api", key=body.key.get_secret_value()))
    except DextoError as err:
        raise LocalStateFailure(err) from None
    st.view.invalidate()
    state = provider_state(p.id, st.view.context()).to_json()
    return KeyStored(provider=p.id, stored=True, source=f"auth-store:{p.id}", state=state)
