"""Unexpected failures: the answer names only the exception class (no traceback, no detail),
and the server log — which the answer's fix points to — holds the cause and the traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dexto.llm.execution import StreamEvent
from dexto.server.app import create_app
from dexto.server.chat_stream import stream_events
from dexto.server.settings import ServerSettings


def test_unexpected_error_logs_the_cause(
    agent_file: Path, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        ServerSettings(
            agent_path=agent_file, refresh_marketplace=False, env={"DEXTO_HOME": str(isolated_env)}
        )
    )

    def probe() -> None:  # a route that fails the way a bug would
        raise RuntimeError("the disk said no: quota exceeded")

    app.add_api_route("/probe", probe)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get("/probe")

    with caplog.at_level(logging.ERROR, logger="dexto.server"):
        resp = asyncio.run(call())
    assert resp.status_code == 500
    assert resp.json() == {
        "error": {
            "code": "INTERNAL_ERROR",
            "message": "unexpected RuntimeError",
            "fix": "see the server log; please report it",
        }
    }
    [record] = [r for r in caplog.records if r.name == "dexto.server"]
    assert "GET /probe" in record.getMessage()
    assert "the disk said no: quota exceeded" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_chat_stream_failure_logs_the_cause(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> AsyncIterator[StreamEvent]:
        raise ConnectionResetError("peer reset while reading chunk 3")
        yield  # pragma: no cover

    async def collect() -> list[bytes]:
        return [b async for b in stream_events({}, broken(), lambda _: None)]

    with caplog.at_level(logging.WARNING, logger="dexto.server.chat"):
        chunks = asyncio.run(collect())
    assert chunks[-1].startswith(b"event: error")
    assert b"ConnectionResetError" in chunks[-1] and b"chunk 3" not in chunks[-1]
    [record] = caplog.records
    assert "peer reset while reading chunk 3" in record.getMessage()
    assert record.exc_info is not None
