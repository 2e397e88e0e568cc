"""Local preferences ``$DEXTO_HOME/preferences.yml`` (SPEC §5.2): they override the agent file
for local runs. Unknown keys and wrong types are errors naming the file, line and key."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dexto.config._yaml import config_error_from_validation, read_yaml
from dexto.errors import ConfigError

__all__ = ["Preferences", "load_preferences"]

FIX = "edit preferences.yml or use `dexto prefs set KEY VALUE`"


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    preferDextoCredits: bool | None = None
    lowCreditsWarningUsd: float = Field(default=0.5, ge=0)
    enabledProviders: list[str] | None = None  # when set, only these are listed
    disabledProviders: list[str] = []
    allowedModels: list[str] | None = None  # glob patterns over "provider/model"
    defaultAgent: str | None = None


def load_preferences(path: Path) -> Preferences:
    """Missing file → defaults; invalid → ConfigError (the file is never rewritten here)."""
    if not path.exists():
        return Preferences()
    doc = read_yaml(path, fix=FIX)
    if doc is None:
        return Preferences()
    if not isinstance(doc, dict):
        raise ConfigError("expected a mapping of preference keys", file=str(path), fix=FIX)
    try:
        return Preferences.model_validate(_plain(doc))
    except ValidationError as exc:
        raise config_error_from_validation(exc, doc, file=str(path), fix=FIX) from None


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
