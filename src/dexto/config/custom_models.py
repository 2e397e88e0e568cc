"""Custom models (SPEC §8.3): ``$DEXTO_HOME/models/custom-models.json`` and ``llm.customModels``.

Only credential *references* are stored (``apiKeyEnv`` or an auth-store name ``apiKeyRef``),
never a raw key.

Writes (``add_custom_model``, ``remove_custom_model``) run under an inter-process lock: the file
is re-read and validated (a corrupt file is an error and is never overwritten), changed, and
replaced atomically with a timestamped backup, keeping ``{"version": 1, "models": [...]}`` and any
other top-level keys a user added. Models are identified by ``(provider, name)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dexto.errors import ConfigError, ProviderNotAllowedError, UnknownProviderError
from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS
from dexto.llm.selection import validate_model_id

__all__ = [
    "CUSTOM_MODEL_PROVIDERS",
    "CustomModel",
    "add_custom_model",
    "check_custom_model_provider",
    "load_custom_models",
    "merge_custom_models",
    "parse_custom_models",
    "remove_custom_model",
]

CUSTOM_MODEL_PROVIDERS = tuple(p.id for p in PROVIDERS.values() if p.custom_models)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIX = "edit the file to match the custom-models format, or re-add the model with `dexto models add`"


def check_custom_model_provider(provider: str, *, file: str | None = None,
                                field: str = "provider") -> None:
    if provider == INTERNAL_PROVIDER:
        raise ProviderNotAllowedError(
            "provider 'dexto' cannot be used for a custom model", file=file, field=field,
            fix="use provider openrouter with the marketplace ID; Dexto credits serve it "
            "automatically after `dexto login`")
    if provider not in CUSTOM_MODEL_PROVIDERS:
        raise UnknownProviderError(
            f"provider {provider!r} does not accept custom models", file=file, field=field,
            fix="use one of: " + ", ".join(CUSTOM_MODEL_PROVIDERS))


class CustomModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str
    baseURL: str | None = None
    displayName: str | None = None
    maxInputTokens: int | None = Field(default=None, gt=0)
    maxOutputTokens: int | None = Field(default=None, gt=0)
    reasoningEffort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    filePath: str | None = None
    apiKeyEnv: str | None = None
    apiKeyRef: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_raw_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "apiKey" in data:
            raise ValueError("raw API keys are never stored with a model; use apiKeyEnv (an "
                             "environment variable name) or apiKeyRef (an auth-store name)")
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return validate_model_id(v, field="name")
        except ConfigError as exc:
            raise ValueError(exc.message) from None

    @field_validator("baseURL")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("baseURL must be an http(s) URL, e.g. http://localhost:4000/v1")
        return v.rstrip("/") if v else v

    @field_validator("apiKeyEnv")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v.removeprefix("$")):
            raise ValueError("apiKeyEnv must be an environment variable name, e.g. MY_LLM_KEY")
        return v.removeprefix("$") if v else v

    @model_validator(mode="after")
    def _provider_rules(self) -> CustomModel:
        if self.provider in ("openai-compatible", "litellm") and not self.baseURL:
            raise ValueError(f"baseURL is required for provider {self.provider}")
        if self.provider == "local" and not (self.filePath or "").endswith(".gguf"):
            raise ValueError("filePath must point to a .gguf file for provider local")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def parse_custom_models(items: Iterable[Any], *, file: str, field_prefix: str,
                        doc: Any = None) -> list[CustomModel]:
    from dexto.config._yaml import config_error_from_validation

    out: list[CustomModel] = []
    for i, raw in enumerate(items):
        if isinstance(raw, dict) and isinstance(raw.get("provider"), str):
            check_custom_model_provider(raw["provider"], file=file,
                                        field=f"{field_prefix}[{i}].provider")
        try:
            out.append(CustomModel.model_validate(dict(raw) if isinstance(raw, dict) else raw))
        except ValidationError as exc:
            err = config_error_from_validation(exc, doc, file=file, fix=FIX)
            raise ConfigError(err.message.split(": ", 1)[-1], file=file, line=err.line,
                              field=f"{field_prefix}[{i}]" + (f".{err.field}" if err.field
                                                               else ""), fix=FIX) from None
    return out


def load_custom_models(path: Path) -> list[CustomModel]:
    """Read ``custom-models.json``; missing → []; corrupt → ConfigError naming file and field."""
    data = _read_document(path)
    return [] if data is None else parse_custom_models(data["models"], file=str(path),
                                                       field_prefix="models")


def _read_document(path: Path) -> dict[str, Any] | None:
    """The validated top-level JSON object (None when the file does not exist)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", file=str(path), fix=FIX) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg})", file=str(path), line=exc.lineno,
                          fix=FIX) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ConfigError('expected {"version": 1, "models": [...]}', file=str(path),
                          field="models", fix=FIX)
    if data.get("version", 1) != 1:
        raise ConfigError(f"unsupported version {data.get('version')!r}", file=str(path),
                          field="version", fix="upgrade dexto to read this file")
    parse_custom_models(data["models"], file=str(path), field_prefix="models")
    return data


def _write_document(path: Path, data: dict[str, Any], models: list[CustomModel]) -> None:
    from dexto.config.files import atomic_write

    out = {"version": 1, **{k: v for k, v in data.items() if k not in ("version", "models")},
           "models": [m.to_json() for m in models]}
    atomic_write(path, json.dumps(out, indent=2) + "\n", backup=path.exists())


def add_custom_model(path: Path, model: CustomModel, *, replace: bool = False) -> bool:
    """Add ``model``; with ``replace`` an existing (provider, name) is replaced, else refused.

    Returns True when an existing entry was replaced.
    """
    from dexto.config.files import file_lock

    check_custom_model_provider(model.provider)
    with file_lock(path):
        data = _read_document(path) or {"version": 1, "models": []}
        models = parse_custom_models(data["models"], file=str(path), field_prefix="models")
        same = [i for i, m in enumerate(models)
                if m.name == model.name and m.provider == model.provider]
        if same and not replace:
            raise ConfigError(f"custom model {model.provider}/{model.name} already exists",
                              file=str(path), field="name",
                              fix="pass --replace to overwrite it, or remove it first with "
                              f"`dexto models remove {model.name} --provider {model.provider}`")
        if same:
            models[same[0]] = model
        else:
            models.append(model)
        _write_document(path, data, models)
        return bool(same)


def remove_custom_model(path: Path, name: str, provider: str | None = None) -> CustomModel:
    """Remove the model ``name`` (of ``provider`` if given) and return it.

    Raises ConfigError when nothing matches, or when the name is ambiguous without ``provider``.
    """
    from dexto.config.files import file_lock

    with file_lock(path):
        data = _read_document(path) or {"version": 1, "models": []}
        models = parse_custom_models(data["models"], file=str(path), field_prefix="models")
        hits = [m for m in models if m.name == name and provider in (None, m.provider)]
        if not hits:
            raise ConfigError(f"no custom model named {name!r}"
                              + (f" for provider {provider}" if provider else ""),
                              file=str(path), field="name",
                              fix="list custom models with `dexto models --json` and use the exact "
                              "name")
        if len(hits) > 1:
            raise ConfigError(f"{len(hits)} custom models are named {name!r}", file=str(path),
                              field="name", fix="pass --provider to say which one: "
                              + ", ".join(m.provider for m in hits))
        _write_document(path, data, [m for m in models if m is not hits[0]])
        return hits[0]


def merge_custom_models(local: Iterable[CustomModel],
                        agent: Iterable[CustomModel]) -> list[CustomModel]:
    """Agent-declared models overlay local ones on a name clash (SPEC §8.3)."""
    merged: dict[str, CustomModel] = {m.name: m for m in local}
    for m in agent:
        merged[m.name] = m
    return list(merged.values())
