"""Bind the listening socket first, then hand it to uvicorn.

A port in use or an address that is not on this machine is a clean ``ConfigError`` (exit 2)
before the application starts — so nothing is logged as started for a server that never
listened. ``url`` is printed by the caller once the socket is bound.
"""

from __future__ import annotations

import errno
import re
import socket
from typing import Any

from dexto.errors import ConfigError

__all__ = ["bind_listener", "listen_url", "parse_port", "run_uvicorn"]

_DIGITS = re.compile(r"[0-9]{1,12}")


def listen_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def parse_port(text: str, *, flag: str = "--port") -> int:
    """``text`` as a TCP port, 0 to 65535 (0: any free port), or ``ConfigError`` naming ``flag``."""
    raw = text.strip()
    fix = f"pass a port between 1 and 65535, e.g. {flag} 3001 (0 picks a free port)"
    if not _DIGITS.fullmatch(raw):
        raise ConfigError(f"{text[:20]!r} is not a port number", field=flag, fix=fix)
    port = int(raw)
    if port > 65535:
        raise ConfigError(f"port {port} is out of range", field=flag, fix=fix)
    return port


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for ``host:port`` (port 0: any free port), or ``ConfigError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        raise _bind_error(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


def _bind_error(host: str, port: int, exc: Exception) -> ConfigError:
    where = listen_url(host, port)
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return ConfigError(
            f"cannot listen on {where}: the port is already in use",
            field="--port",
            fix=f"stop the process using port {port}, or pass another port, e.g. "
            f"--port {port + 1 if port < 65535 else 8080}, or --port 0 to pick a free one",
        )
    if code in (errno.EACCES, errno.EPERM):
        return ConfigError(
            f"cannot listen on {where}: permission denied",
            field="--port",
            fix="ports below 1024 need privileges; pass --port 1024 or higher",
        )
    if code == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return ConfigError(
            f"cannot listen on {where}: the address is not on this machine",
            field="--host",
            fix="pass --host 127.0.0.1 (or an address of this machine)",
        )
    if isinstance(exc, OverflowError):
        return ConfigError(
            f"port {port} is out of range", field="--port", fix="pass a port between 1 and 65535"
        )
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return ConfigError(
        f"cannot listen on {where}: {reason}", field="--host", fix="check --host and --port"
    )


def run_uvicorn(app: Any, sock: socket.socket, *, workers: int = 1, **config: Any) -> int:
    """Serve ``app`` on the bound ``sock`` until stopped; 0, or 1 if the server never started
    (its start-up failed; uvicorn has logged why)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    cfg = uvicorn.Config(app, host=host, port=port, workers=workers, **config)
    server = uvicorn.Server(cfg)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(cfg, sockets=[sock]).run()
            return 0
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else 1
