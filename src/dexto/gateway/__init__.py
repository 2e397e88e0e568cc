"""The Dexto gateway: an OpenAI-compatible OpenRouter proxy with a credits ledger (SPEC §10).

Build the ASGI app with :func:`create_app` from one :class:`GatewaySettings`; run it with
``dexto gateway serve``. Operator documentation: ``docs/gateway.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["GatewaySettings", "create_app"]

if TYPE_CHECKING:
    from dexto.gateway.app import create_app
    from dexto.gateway.settings import GatewaySettings


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for settings) must not pull in Starlette and httpx.
    if name == "create_app":
        from dexto.gateway.app import create_app

        return create_app
    if name == "GatewaySettings":
        from dexto.gateway.settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(name)
