"""Run an ASGI app with uvicorn on a background thread (tests, benchmarks, demos)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

__all__ = ["DropConnectionFilter", "ServerThread", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DropConnectionFilter(logging.Filter):
    """Hide uvicorn's traceback for the fake's deliberate connection drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "DeliberateDrop"


def install_drop_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropConnectionFilter) for f in logger.filters):
        logger.addFilter(DropConnectionFilter())


class ServerThread:
    """``with ServerThread(app) as srv: srv.url`` — uvicorn on a free loopback port."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        lifespan: Literal["auto", "on", "off"] = "on",
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            lifespan=lifespan,
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="httptools",
            timeout_graceful_shutdown=5,
        )
        install_drop_filter()  # after Config: it (re)configures uvicorn's loggers
        self.server = uvicorn.Server(self.config)
        self._thread = threading.Thread(target=self.server.run, daemon=True, name=f"uvicorn-{port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
