"""ErrorGuard under a real uvicorn server (it reads uvicorn's own "response started" flag)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
import uvicorn

from dexto.gateway.guard import ErrorGuard
from dexto.gateway.state import GatewayState


def _no_state() -> GatewayState:
    raise RuntimeError("not started")


async def _app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise KeyError("boom")


@pytest.mark.parametrize(
    ("path", "answered"),
    [("/before-start", True), ("/after-start", False)],
)
def test_failure_before_start_is_json_500_after_start_ends_the_response(
    path: str, answered: bool
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario() -> httpx.Response | Exception:
        config = uvicorn.Config(
            ErrorGuard(_app, _no_state),
            host="127.0.0.1",
            port=port,
            log_level="critical",
            lifespan="off",
            http="httptools",
        )
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                try:
                    return await c.get(path)
                except httpx.HTTPError as exc:
                    return exc
        finally:
            server.should_exit = True
            await serving

    result = asyncio.run(scenario())
    if answered:
        assert isinstance(result, httpx.Response)
        assert result.status_code == 500
        assert result.json()["error"]["code"] == "INTERNAL_ERROR"
    else:
        # The 200 had started: no second response, the body is cut short.
        assert isinstance(result, httpx.RemoteProtocolError)
