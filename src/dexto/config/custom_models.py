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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dexto._url import host_and_port_ok
from dexto.errors import ConfigError, ProviderNotAllowedError, UnknownProviderError
from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS, canonical_provider_id
from dexto.llm.selection import ProviderId, validate_model_id

__all__ = [
    "CUSTOM_MODEL_PROVIDERS",
    "CustomModel",
    "NEW_ENTRY",
    "add_custom_model",
    "check_addable",
    "check_custom_model_provider",
    "load_custom_models",
    "merge_custom_models",
    "parse_custom_models",
    "remove_custom_model",
]

CUSTOM_MODEL_PROVIDERS = tuple(p.id for p in PROVIDERS.values() if p.custom_models)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIX = "edit the file to match the custom-models format, or re-add the model with `dexto models add`"
AGENT_FIX = "fix the entry under llm.customModels in the agent file"


def _entry_fix(path: str, raw: Any) -> str:
    """For an invalid entry of custom-models.json: the command that removes or replaces it."""
    if (
        isinstance(raw, dict)
        and isinstance(raw.get("name"), str)
        and isinstance(raw.get("provider"), str)
    ):
        name, provider = raw["name"][:200], raw["provider"][:64]
        fix = f"remove it with `dexto models remove {name} --provider {provider}`"
        if provider not in CUSTOM_MODEL_PROVIDERS:
            return fix
        return (
            f"{fix}, or replace it with `dexto models add --provider {provider} --name {name}"
            " … --replace`"
        )
    return f"correct the entry in an editor, or move the file aside: mv {path} {path}.broken"


def _file_fix(path: str) -> str:
    return (
        f"correct it in an editor, or move it aside (then re-add models with `dexto models "
        f"add`): mv {path} {path}.broken"
    )


def check_custom_model_provider(
    provider: str, *, file: str | None = None, field: str = "provider"
) -> str:
    """The canonical ID of a provider that accepts custom models, or the typed error."""
    provider = canonical_provider_id(provider)
    if provider == INTERNAL_PROVIDER:
        raise ProviderNotAllowedError(
            "provider 'dexto' cannot be used for a custom model",
            file=file,
            field=field,
            fix="use provider openrouter with the marketplace ID; Dexto credits serve it "
            "automatically after `dexto login`",
        )
    if provider not in CUSTOM_MODEL_PROVIDERS:
        raise UnknownProviderError(
            f"provider {provider!r} does not accept custom models",
            file=file,
            field=field,
            fix="use one of: " + ", ".join(CUSTOM_MODEL_PROVIDERS),
        )
    return provider


#: Validation context key: set when a model is being added (stricter checks than for loading,
#: so an entry that was accepted before still loads and is reported where it is used).
NEW_ENTRY = "new_entry"


def _check_host_and_port(url: str) -> None:
    """Raise ValueError (without the URL, which may hold a password) for a URL whose host or port
    cannot be used: a port that is not a number in 1-65535, an unclosed ``[``, no host."""
    if not host_and_port_ok(url):
        raise ValueError(
            "baseURL has an invalid host or port (the port must be a number from 1 to 65535), "
            "e.g. http://localhost:4000/v1"
        )


class CustomModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: ProviderId
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
            raise ValueError(
                "raw API keys are never stored with a model; use apiKeyEnv (an "
                "environment variable name) or apiKeyRef (an auth-store name)"
            )
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
    def _url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("baseURL must be an http(s) URL, e.g. http://localhost:4000/v1")
        if v is not None and isinstance(info.context, dict) and info.context.get(NEW_ENTRY):
            _check_host_and_port(v)
        return v.rstrip("/") if v else v

    @field_validator("apiKeyEnv")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v.removeprefix("$")):
            raise ValueError("apiKeyEnv must be an environment variable name, e.g. MY_LLM_KEY")
        return v.removeprefix("$") if v else v

    @model_validator(mode="after")
    def _provider_rules(self) -> CustomModel:
        row = PROVIDERS.get(self.provider)
        if row is not None and row.requires_base_url and not self.baseURL:
            raise ValueError(f"baseURL is required for provider {self.provider}")
        if self.provider == "local" and not (self.filePath or "").endswith(".gguf"):
            raise ValueError("filePath must point to a .gguf file for provider local")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def parse_custom_models(
    items: Iterable[Any], *, file: str, field_prefix: str, doc: Any = None, fix: str | None = None
) -> list[CustomModel]:
    """Validate each entry. ``fix`` is the remedy for an invalid entry (default: the agent file's
    ``llm.customModels``; for custom-models.json, the command that removes/replaces it)."""
    return [
        _parse_one(raw, i, file=file, field_prefix=field_prefix, doc=doc, fix=fix)
        for i, raw in enumerate(items)
    ]


def _parse_one(
    raw: Any, i: int, *, file: str, field_prefix: str, doc: Any, fix: str | None
) -> CustomModel:
    from dexto.config._yaml import config_error_from_validation

    remedy = fix if fix is not None else AGENT_FIX
    if isinstance(raw, dict) and isinstance(raw.get("provider"), str):
        try:
            check_custom_model_provider(
                raw["provider"], file=file, field=f"{field_prefix}[{i}].provider"
            )
        except ConfigError as exc:
            raise type(exc)(
                exc.message.split(": ", 2)[-1],
                file=file,
                field=f"{field_prefix}[{i}].provider",
                fix=f"{remedy} (providers with custom models: {', '.join(CUSTOM_MODEL_PROVIDERS)})",
            ) from None
    try:
        return CustomModel.model_validate(dict(raw) if isinstance(raw, dict) else raw)
    except ValidationError as exc:
        err = config_error_from_validation(exc, doc, file=file, fix=remedy)
        message = err.message.split(": ", 1)[-1].removeprefix("Value error, ")
        raise ConfigError(
            message,
            file=file,
            line=err.line,
            field=f"{field_prefix}[{i}]" + (f".{err.field}" if err.field else ""),
            fix=remedy,
        ) from None


def load_custom_models(path: Path) -> list[CustomModel]:
    """Read ``custom-models.json``; missing → []; corrupt → ConfigError naming file and field."""
    data = _read_document(path)
    if data is None:
        return []
    return [
        _parse_one(
            raw, i, file=str(path), field_prefix="models", doc=None, fix=_entry_fix(str(path), raw)
        )
        for i, raw in enumerate(data["models"])
    ]


def _read_document(path: Path) -> dict[str, Any] | None:
    """The top-level JSON object, shape-checked (None when the file does not exist)."""
    file = str(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ConfigError("file is not UTF-8 text", file=file, fix=_file_fix(file)) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror or type(exc).__name__})",
            file=file,
            fix="check the file's permissions",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg})", file=file, line=exc.lineno, fix=_file_fix(file)
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ConfigError(
            'expected {"version": 1, "models": [...]}',
            file=file,
            field="models",
            fix=_file_fix(file),
        )
    if data.get("version", 1) != 1:
        raise ConfigError(
            f"unsupported version {data.get('version')!r}",
            file=file,
            field="version",
            fix="upgrade dexto to read this file",
        )
    return data


def _same(raw: Any, provider: str | None, name: str) -> bool:
    return (
        isinstance(raw, dict)
        and raw.get("name") == name
        and provider in (None, raw.get("provider"))
    )


def _entries_for_edit(
    path: Path, provider: str | None, name: str
) -> tuple[dict[str, Any], list[CustomModel | dict[str, Any]]]:
    """The document and its entries for an edit of ``(provider, name)``: valid entries as
    models; an invalid entry is kept raw when it is the one being edited (so the edit repairs
    it), and any other invalid entry is the error (with its own fix), nothing being written."""
    data = _read_document(path) or {"version": 1, "models": []}
    out: list[CustomModel | dict[str, Any]] = []
    for i, raw in enumerate(data["models"]):
        try:
            out.append(
                _parse_one(
                    raw,
                    i,
                    file=str(path),
                    field_prefix="models",
                    doc=None,
                    fix=_entry_fix(str(path), raw),
                )
            )
        except ConfigError:
            if not _same(raw, provider, name):
                raise
            out.append(raw)
    return data, out


def _key(entry: CustomModel | dict[str, Any]) -> tuple[Any, Any]:
    if isinstance(entry, CustomModel):
        return entry.provider, entry.name
    return entry.get("provider"), entry.get("name")


def _write_document(
    path: Path, data: dict[str, Any], models: list[CustomModel | dict[str, Any]]
) -> None:
    from dexto.config.files import atomic_write

    out = {
        "version": 1,
        **{k: v for k, v in data.items() if k not in ("version", "models")},
        "models": [m.to_json() if isinstance(m, CustomModel) else m for m in models],
    }
    atomic_write(path, json.dumps(out, indent=2) + "\n", backup=path.exists())


def _same_entries(
    path: Path,
    model: CustomModel,
    entries: list[CustomModel | dict[str, Any]],
    replace: bool,
    own_key_ref: bool = False,
) -> list[int]:
    """Indexes of the entries ``model`` would replace; a clash without ``replace`` raises, and,
    with ``own_key_ref`` (a reference made for this model's own key), so does an ``apiKeyRef``
    that another model already uses. A reference named by the user may be shared."""
    same = [i for i, e in enumerate(entries) if _key(e) == (model.provider, model.name)]
    shared = [
        e
        for i, e in enumerate(entries)
        if own_key_ref
        and model.apiKeyRef
        and i not in same
        and (e.apiKeyRef if isinstance(e, CustomModel) else e.get("apiKeyRef")) == model.apiKeyRef
    ]
    if shared:
        provider, name = _key(shared[0])
        raise ConfigError(
            f"the key reference {model.apiKeyRef!r} is already used by custom model "
            f"{provider}/{name}; a model's key is never shared with another model's",
            file=str(path),
            field="apiKeyRef",
            fix=f"give {provider}/{name} its own reference (re-add it with `dexto models add "
            "… --api-key KEY --replace`), or use --api-key-env for this model",
        )
    if same and not replace:
        raise ConfigError(
            f"custom model {model.provider}/{model.name} already exists",
            file=str(path),
            field="name",
            fix="pass --replace to overwrite it, or remove it first with "
            f"`dexto models remove {model.name} --provider {model.provider}`",
        )
    return same


def check_addable(
    path: Path, model: CustomModel, *, replace: bool = False, own_key_ref: bool = False
) -> bool:
    """Raise the error ``add_custom_model`` would (a clash without ``replace``, an invalid other
    entry, a shared ``own_key_ref``); return True when an entry would be replaced."""
    _, entries = _entries_for_edit(path, model.provider, model.name)
    return bool(_same_entries(path, model, entries, replace, own_key_ref))


def add_custom_model(
    path: Path, model: CustomModel, *, replace: bool = False, own_key_ref: bool = False
) -> bool:
    """Add ``model``; with ``replace`` an existing (provider, name) is replaced, else refused.

    An invalid entry with the same (provider, name) is replaced too. With ``own_key_ref`` (its
    ``apiKeyRef`` names a key stored for this model alone) a reference another model uses is
    refused. Returns True when an existing entry was replaced.
    """
    from dexto.config.files import file_lock

    check_custom_model_provider(model.provider)
    with file_lock(path):
        data, entries = _entries_for_edit(path, model.provider, model.name)
        same = _same_entries(path, model, entries, replace, own_key_ref)
        if same:
            entries[same[0]] = model
        else:
            entries.append(model)
        _write_document(path, data, entries)
        return bool(same)


def remove_custom_model(path: Path, name: str, provider: str | None = None) -> CustomModel:
    """Remove the model ``name`` (of ``provider`` if given) and return it; an invalid entry
    with that name can be removed too (it is returned with its name, provider and key ref).

    Raises ConfigError when nothing matches, or when the name is ambiguous without ``provider``.
    """
    from dexto.config.files import file_lock

    provider = None if provider is None else canonical_provider_id(provider)
    with file_lock(path):
        data, entries = _entries_for_edit(path, provider, name)
        hits = [e for e in entries if _key(e)[1] == name and provider in (None, _key(e)[0])]
        if not hits:
            raise ConfigError(
                f"no custom model named {name!r}"
                + (f" for provider {provider}" if provider else ""),
                file=str(path),
                field="name",
                fix="list custom models with `dexto models --json` and use the exact name",
            )
        if len(hits) > 1:
            raise ConfigError(
                f"{len(hits)} custom models are named {name!r}",
                file=str(path),
                field="name",
                fix="pass --provider to say which one: " + ", ".join(str(_key(e)[0]) for e in hits),
            )
        _write_document(path, data, [e for e in entries if e is not hits[0]])
        hit = hits[0]
        if isinstance(hit, CustomModel):
            return hit
        ref = hit.get("apiKeyRef")
        return CustomModel.model_construct(
            name=name,
            provider=str(hit.get("provider")),
            apiKeyRef=ref if isinstance(ref, str) else None,
        )


def merge_custom_models(
    local: Iterable[CustomModel], agent: Iterable[CustomModel]
) -> list[CustomModel]:
    """Agent-declared models overlay local ones on a name clash (SPEC §8.3)."""
    merged: dict[str, CustomModel] = {m.name: m for m in local}
    for m in agent:
        merged[m.name] = m
    return list(merged.values())
