"""The server's two custom-model writes, delegated to ``dexto.config.custom_models``.

The routes use only ``upsert`` and ``remove``; the file format, locking, atomic replace and
timestamped backup (SPEC §9) all live in the config module.
"""

from __future__ import annotations

from pathlib import Path

from dexto.config.custom_models import (
    CustomModel,
    add_custom_model,
    load_custom_models,
    remove_custom_model,
)
from dexto.llm.providers import canonical_provider_id

__all__ = ["remove", "upsert"]


def upsert(path: Path, model: CustomModel) -> bool:
    """Add ``model`` or replace the one with the same provider and name; True if replaced."""
    return add_custom_model(path, model, replace=True)


def remove(path: Path, name: str, provider: str | None = None) -> list[CustomModel]:
    """Remove the models named ``name`` (of ``provider``, in any case, if given); return what was
    removed."""
    provider = None if provider is None else canonical_provider_id(provider)
    hits = [
        m for m in load_custom_models(path) if m.name == name and provider in (None, m.provider)
    ]
    return [remove_custom_model(path, m.name, m.provider) for m in hits]
