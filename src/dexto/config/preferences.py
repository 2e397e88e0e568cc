"""Local preferences ``$DEXTO_HOME/preferences.yml`` (SPEC §5.2): they override the agent file
for local runs. Unknown keys and wrong types are errors naming the file, line and key.

``set_preference`` / ``unset_preference`` edit the file in place (comments, order and formatting
kept, see ``dexto.config.yaml_edit``) under an inter-process lock, after validating both the
current file (an invalid file is reported, never overwritten) and the result. Values given as
text (the CLI) are parsed by ``parse_pref_value``: booleans are ``true``/``false``, lists are
comma-separated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dexto.config._yaml import config_error_from_validation, read_yaml
from dexto.errors import ConfigError
from dexto.llm.providers import canonical_provider_id
from dexto.llm.selection import ProviderId

__all__ = [
    "PREFERENCE_KEYS",
    "Preferences",
    "get_preference",
    "list_preferences",
    "load_preferences",
    "model_allowed",
    "parse_pref_value",
    "set_preference",
    "unset_preference",
]

FIX = "edit preferences.yml or use `dexto prefs set KEY VALUE`"


def _key_fix(key: str) -> str:
    """A fix for an invalid value (or unknown key) in the file that works in that state."""
    if key in PREFERENCE_KEYS:
        return (
            f"`dexto prefs set {key} VALUE` ({_KIND_HINT[PREFERENCE_KEYS[key][0]]}), or "
            f"`dexto prefs unset {key}` to return to the default"
        )
    return f"`dexto prefs unset {key}` removes it (known keys: {', '.join(PREFERENCE_KEYS)})"


def _file_fix(path: Path) -> str:
    return (
        f"correct it in an editor, or move it aside (the defaults then apply): "
        f"mv {path} {path}.broken"
    )


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    preferDextoCredits: bool | None = None
    lowCreditsWarningUsd: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    enabledProviders: list[ProviderId] | None = None  # when set, only these are listed
    disabledProviders: list[ProviderId] = []
    allowedModels: list[str] | None = None  # glob patterns over "provider/model"
    defaultAgent: str | None = None


def model_allowed(patterns: Sequence[str] | None, provider: str, model: str) -> bool:
    """Does ``provider/model`` match one of the ``allowedModels`` globs (None: every model)?

    Matched with ``fnmatchcase`` over ``provider/model``, the provider part (the pattern's text
    before its first ``/``, and ``provider``) ignoring ASCII case as provider IDs do everywhere
    (``canonical_provider_id``); the model part keeps its case. A pattern without ``/`` is
    matched as written against the whole ``provider/model``.
    """
    if patterns is None:
        return True
    subject = f"{canonical_provider_id(provider)}/{model}"
    return any(fnmatchcase(subject, _canonical_pattern(p)) for p in patterns)


def _canonical_pattern(pattern: str) -> str:
    head, slash, rest = pattern.partition("/")
    return canonical_provider_id(head) + slash + rest if slash else pattern


def load_preferences(path: Path) -> Preferences:
    """Missing file → defaults; invalid → ConfigError (the file is never rewritten here)."""
    if not path.exists():
        return Preferences()
    return _validate(_read_mapping(path), path)


def _read_mapping(path: Path) -> Any:
    """The parsed file (round-trip nodes; None when empty); not a mapping → ConfigError."""
    doc = read_yaml(path, fix=_file_fix(path))
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(
            "expected a mapping of preference keys", file=str(path), fix=_file_fix(path)
        )
    return doc


def _validate(doc: Any, path: Path) -> Preferences:
    """Validate the parsed file; errors name the file, line and key, and a fix for that key."""
    try:
        return Preferences.model_validate(_plain(doc) or {})
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        raise config_error_from_validation(
            exc, doc, file=str(path), fix=_key_fix(key) if key else FIX
        ) from None


def _plain(node: object) -> object:
    """ruamel's commented containers and scalars → plain Python (strict validation needs it)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


#: key → (kind, description). Kinds: bool, number, providers, patterns, text.
PREFERENCE_KEYS: dict[str, tuple[str, str]] = {
    "preferDextoCredits": ("bool", "use Dexto credits when both credits and your own key work"),
    "lowCreditsWarningUsd": ("number", "warn when the credit balance falls below this (USD)"),
    "enabledProviders": ("providers", "only list these providers (comma-separated)"),
    "disabledProviders": ("providers", "never list these providers (comma-separated)"),
    "allowedModels": ("patterns", "only list models matching these provider/model globs"),
    "defaultAgent": ("text", "the agent id used when none is given"),
}
_TRUE, _FALSE = {"true"}, {"false"}
_KIND_HINT = {
    "bool": "true or false",
    "number": "a number of US dollars, e.g. 0.5",
    "providers": "comma-separated provider ids, e.g. anthropic,openai",
    "patterns": "comma-separated provider/model globs, e.g. anthropic/*",
    "text": "an agent id, see `dexto agents list`",
}


def _check_key(key: str) -> str:
    if key not in PREFERENCE_KEYS:
        import difflib

        close = difflib.get_close_matches(key, list(PREFERENCE_KEYS), n=1, cutoff=0.6)
        hint = f" — did you mean {close[0]}?" if close else ""
        raise ConfigError(
            f"unknown preference {key[:64]!r}{hint}",
            field=key[:64],
            fix="use one of: " + ", ".join(PREFERENCE_KEYS),
        )
    return key


def parse_pref_value(key: str, text: str) -> Any:
    """Parse CLI text for ``key`` into its typed value, or raise ConfigError with the fix."""
    kind = PREFERENCE_KEYS[_check_key(key)][0]
    raw = text.strip()
    if kind == "bool":
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ConfigError(f"{text[:40]!r} is not a boolean", field=key, fix="use true or false")
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"{text[:40]!r} is not a non-negative number",
                field=key,
                fix="use a number of US dollars, e.g. 0.5",
            )
        return value
    if kind in ("providers", "patterns"):
        items = [part.strip() for part in raw.split(",") if part.strip()]
        return _check_providers(key, items) if kind == "providers" else items
    if not raw:
        raise ConfigError("the value is empty", field=key, fix="give a value, or use `unset`")
    return raw


def _check_providers(key: str, items: list[str]) -> list[str]:
    """The items as canonical provider IDs, or the typed error naming ``key``."""
    from dexto.llm.providers import get_provider

    try:
        return [get_provider(item).id for item in items]
    except ConfigError as exc:
        raise type(exc)(exc.message, field=key, fix=exc.fix) from None


def get_preference(path: Path, key: str) -> Any:
    """The effective value of ``key`` (the default when it is not set)."""
    return getattr(load_preferences(path), _check_key(key))


def list_preferences(path: Path) -> dict[str, dict[str, Any]]:
    """Every key with its effective value and whether the file sets it."""
    prefs = load_preferences(path)
    return {
        k: {"value": getattr(prefs, k), "set": k in prefs.model_fields_set, "description": desc}
        for k, (_, desc) in PREFERENCE_KEYS.items()
    }


def set_preference(path: Path, key: str, value: Any) -> Preferences:
    """Validate and write ``key: value``, keeping the rest of the file byte-for-byte.

    Only the new value is checked against its key, so ``set`` repairs an invalid value of that
    key even while other keys are still invalid (the edit touches only this key's text; each
    remaining problem is reported by the next read, with its own fix). Returns the validated
    preferences, or the defaults plus this key while the file is still invalid elsewhere.
    """
    from dexto.config.files import file_lock
    from dexto.config.yaml_edit import set_yaml_values

    _check_key(key)
    try:
        Preferences.model_validate({key: value})
    except ValidationError as exc:
        raise ConfigError(
            exc.errors()[0]["msg"],
            field=key,
            file=str(path),
            fix=f"expected {_KIND_HINT[PREFERENCE_KEYS[key][0]]}",
        ) from None
    with file_lock(path):
        if path.exists():
            _read_mapping(path)  # a file that does not parse is reported, never rewritten
        set_yaml_values(path, {(key,): value}, fix=_file_fix(path))
        try:
            return load_preferences(path)
        except ConfigError:
            return Preferences.model_validate({key: value})


def unset_preference(path: Path, key: str) -> bool:
    """Remove ``key`` from the file (it returns to its default); False if it was not set.

    A key the file holds is removed even when it is unknown or its value is invalid — that is
    how such a file is repaired; the rest of the file is kept byte-for-byte.
    """
    from dexto.config.files import file_lock
    from dexto.config.yaml_edit import remove_yaml_key

    with file_lock(path):
        doc = _read_mapping(path) if path.exists() else None
        if doc is None or key not in doc:
            _check_key(key)
            return False
        return remove_yaml_key(path, (key,), fix=_file_fix(path))
