"""Change the agent's selection: validate like the config loader, then edit the file safely.

The new ``llm`` section is the old one with ``provider``/``model`` replaced, validated by
``validate_llm_section`` (so ``provider: dexto`` and malformed IDs fail exactly as when loading);
nothing is written unless it validates. The edit goes through ``set_yaml_values``: atomic, with a
timestamped backup, comments and order kept. When the provider changes, the provider-specific
``apiKey`` reference and ``baseURL`` are cleared (set to null) so they are not sent to the new
provider. The provider is written in its canonical spelling (``OpenAI`` → ``openai``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dexto.config._yaml import read_yaml
from dexto.config.agent import FIX, validate_llm_section
from dexto.config.yaml_edit import set_yaml_values
from dexto.errors import ConfigError
from dexto.llm.providers import canonical_provider_id

__all__ = ["switch_selection"]

_PROVIDER_SPECIFIC = ("apiKey", "baseURL")


def _plain_llm(path: Path) -> tuple[Any, dict[str, Any]]:
    doc = read_yaml(path, fix=FIX)
    llm = doc.get("llm") if isinstance(doc, dict) else None
    if not isinstance(llm, dict):
        raise ConfigError("no llm section", file=str(path), field="llm", fix=FIX)
    return doc, dict(llm)


def switch_selection(path: Path, provider: object, model: object) -> None:
    """Validate and persist ``(provider, model)``; raise a typed error and write nothing if bad."""
    doc, llm = _plain_llm(path)
    provider = _canonical(provider)
    changes: dict[Sequence[str], Any] = {("llm", "provider"): provider, ("llm", "model"): model}
    if provider != _canonical(llm.get("provider")):
        for key in _PROVIDER_SPECIFIC:
            if llm.get(key) is not None:
                changes[("llm", key)] = None
    candidate = {**llm, **{k[1]: v for k, v in changes.items()}}
    validate_llm_section(candidate, file=str(path), doc=doc)
    if llm.get("provider") == provider and llm.get("model") == model:
        return
    set_yaml_values(path, changes, fix=FIX)


def _canonical(provider: object) -> object:
    return canonical_provider_id(provider) if isinstance(provider, str) else provider
