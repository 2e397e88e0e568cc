"""Typed settings of the agent server, validated once when the app is built."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dexto.config.paths import DextoPaths
from dexto.errors import ConfigError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "ServerSettings",
    "check_listen",
    "is_loopback",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001
TOKEN_ENV = "DEXTO_SERVER_TOKEN"
DEFAULT_MAX_BODY = 256 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int, token: str | None, *, flags: bool = False) -> None:
    """Raise ``ConfigError`` for a port out of range, a token shorter than 8 characters, or a
    host off loopback without a token. Reads nothing but its arguments, so ``dexto serve`` runs
    it before anything is written; ``flags`` names the fields as its flags (``--port``)."""
    dash = "--" if flags else ""
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"port {port} is out of range",
            field=f"{dash}port",
            fix="use a port between 1 and 65535" + (" (0 picks a free port)" if flags else ""),
        )
    if token is not None and len(token.strip()) < 8:
        raise ConfigError(
            "the server token is shorter than 8 characters",
            field=f"{dash}token",
            fix=f"use a longer random token (--token or {TOKEN_ENV})",
        )
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host} without a token",
            field=f"{dash}host",
            fix=f"pass --token TOKEN (or set {TOKEN_ENV}), or bind to {DEFAULT_HOST}",
        )


@dataclass(frozen=True)
class ServerSettings:
    """Everything the app reads; ``env`` is a snapshot (credentials resolve from it)."""

    agent_path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    max_body_bytes: int = DEFAULT_MAX_BODY
    refresh_marketplace: bool = True
    refresh_interval_s: float = 600.0

    def __post_init__(self) -> None:
        check_listen(self.host, self.port, self.token)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def paths(self) -> DextoPaths:
        return DextoPaths.from_env(self.env)

    def allowed_hosts(self) -> frozenset[str] | None:
        """Host headers accepted on a loopback bind (DNS-rebinding guard); None = any."""
        if not self.loopback:
            return None
        names = ("127.0.0.1", "localhost", "[::1]")
        return frozenset(n for name in names for n in (name, f"{name}:{self.port}"))
