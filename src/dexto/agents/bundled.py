"""The agents shipped inside the package, read through ``importlib.resources``."""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["bundled_agent_ids", "bundled_text", "content_hash"]


def content_hash(data: bytes) -> str:
    """The hash recorded as ``bundledHash``: ``sha256:<hex>`` of the exact file bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bundled_agent_ids() -> list[str]:
    """Ids of the bundled agents (file names without ``.yml``), sorted."""
    root = resources.files("dexto.agents")
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".yml"))


def bundled_text(agent_id: str) -> bytes:
    """The bundled file's bytes; ``KeyError`` if there is no such bundled agent."""
    if agent_id not in bundled_agent_ids():
        raise KeyError(agent_id)
    return resources.files("dexto.agents").joinpath(f"{agent_id}.yml").read_bytes()
