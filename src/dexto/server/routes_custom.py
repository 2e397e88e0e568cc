"""``GET/POST /llm/custom-models`` and ``DELETE /llm/custom-models/{name}``.

Bodies are validated by the same code that reads the models file (``parse_custom_models``), so
``provider: dexto`` is ``PROVIDER_NOT_ALLOWED`` and raw keys are refused, exactly as on disk.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel

from dexto.config.custom_models import CUSTOM_MODEL_PROVIDERS, CustomModel, parse_custom_models
from dexto.errors import DextoError
from dexto.llm.marketplace import ValidationStatus
from dexto.llm.providers import PROVIDERS
from dexto.server import custom_store
from dexto.server.deps import AppState, app_state
from dexto.server.errors import ApiError, LocalStateFailure
from dexto.server.openapi import MODEL_ID_SCHEMA, WS, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/llm/custom-models", tags=["custom models"])
State = Annotated[AppState, Depends(app_state)]
_NEEDS_BASE_URL = [p for p in CUSTOM_MODEL_PROVIDERS if PROVIDERS[p].requires_base_url]
_NEEDS_FILE = [p for p in CUSTOM_MODEL_PROVIDERS if PROVIDERS[p].wire == "local"]


def _body_schema() -> dict[str, Any]:
    """``CustomModel`` with the rules its validators enforce, one variant per provider kind."""
    base = CustomModel.model_json_schema()
    props: dict[str, Any] = dict(base["properties"])
    url = {"type": "string", "pattern": rf"^https?://[^{WS}/]+"}
    env = {"type": "string", "pattern": r"^\$?[A-Za-z_][A-Za-z0-9_]*$"}
    props["name"] = {**MODEL_ID_SCHEMA, "title": "Name"}
    props["baseURL"] = {"anyOf": [url, {"type": "null"}], "title": "Baseurl"}
    props["apiKeyEnv"] = {"anyOf": [env, {"type": "null"}], "title": "Apikeyenv"}
    plain = [p for p in CUSTOM_MODEL_PROVIDERS if p not in _NEEDS_BASE_URL + _NEEDS_FILE]
    kinds: list[tuple[list[str], dict[str, Any], list[str]]] = [
        (plain, {}, []),
        (_NEEDS_BASE_URL, {"baseURL": url}, ["baseURL"]),
        (_NEEDS_FILE, {"filePath": {"type": "string", "pattern": r"\.gguf$"}}, ["filePath"]),
    ]
    variants = [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "provider", *required],
            "properties": {**props, **extra, "provider": {"type": "string", "enum": ids}},
        }
        for ids, extra, required in kinds
        if ids
    ]
    return {"title": "CustomModel", "anyOf": variants}


_BODY_SCHEMA = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _body_schema()}}}
}


class CustomModelList(BaseModel):
    models: list[dict[str, Any]]
    file: str


class Saved(BaseModel):
    model: dict[str, Any]
    replaced: bool
    validation: ValidationStatus | None


def _listing(st: AppState) -> CustomModelList:
    snap = st.view.snapshot()
    local = {m.name for m in _local_models(st)}
    rows = [
        {**m.to_json(), "origin": "local" if m.name in local else "agent"}
        for m in snap.local.custom_models
    ]
    return CustomModelList(models=rows, file=str(st.view.paths.custom_models))


def _local_models(st: AppState) -> list[CustomModel]:
    from dexto.config.custom_models import load_custom_models

    try:
        return load_custom_models(st.view.paths.custom_models)
    except DextoError as err:
        raise LocalStateFailure(err) from None


@router.get(
    "",
    response_model=CustomModelList,
    summary="Custom models (local file merged with the agent's llm.customModels)",
)
def list_models(st: State) -> CustomModelList:
    return _listing(st)


@router.post(
    "",
    response_model=Saved,
    status_code=201,
    openapi_extra=_BODY_SCHEMA,
    summary="Add or replace a custom model",
)
def add_model(st: State, raw: Annotated[dict[str, Any], Body()]) -> Saved:
    model = parse_custom_models([raw], file="request body", field_prefix="model")[0]
    path = st.view.paths.custom_models
    try:
        replaced = custom_store.upsert(path, model)
    except DextoError as err:
        raise LocalStateFailure(err) from None
    st.view.invalidate()
    market = st.view.context().marketplace()
    status = market.status(model.name) if model.provider == "openrouter" and market else None
    return Saved(model=model.to_json(), replaced=replaced, validation=status)


@router.delete(
    "/{name:path}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    summary="Remove a custom model by name (optionally only for one provider)",
)
def delete_model(st: State, name: str, provider: str | None = None) -> Response:
    try:
        gone = custom_store.remove(st.view.paths.custom_models, name, provider)
    except DextoError as err:
        raise LocalStateFailure(err) from None
    if not gone:
        raise ApiError(
            "NOT_FOUND",
            f"no custom model named {name!r} in the local models file",
            fix="list them with GET /llm/custom-models; models declared in the agent "
            "file are removed by editing it",
        )
    st.view.invalidate()
    return Response(status_code=204)
