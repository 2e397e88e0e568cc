"""The offline demo of the whole story (``dexto demo``) and the local stack it runs on."""

from __future__ import annotations

__all__: list[str] = []
