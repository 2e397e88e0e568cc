"""``/v1/responses`` money paths: a relay that raises mid-stream. A request that delivered output
is charged exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, ledger_state, start_gateway
from _scripted import ScriptedUpstream

from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway import stream
from dexto.gateway.db import Database
from dexto.gateway.responses_wire import StreamTranslator

MODEL = "fake/cheap"


@pytest.fixture
def scripted(tmp_path: Any) -> Iterator[Gateway]:
    with ServerThread(ScriptedUpstream()) as srv:
        db = f"sqlite:///{tmp_path / 'gw.db'}"
        with start_gateway(
            db, srv.url + "/api/v1", credits_micros=1_000_000, spool_dir=str(tmp_path / "spool")
        ) as gw:
            yield gw


def _sse(doc: dict[str, Any] | str) -> str:
    return "data: " + (doc if isinstance(doc, str) else json.dumps(doc)) + "\n\n"


def _content(text: str) -> str:
    return _sse(
        {"id": "gen-1", "model": MODEL, "choices": [{"index": 0, "delta": {"content": text}}]}
    )


USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.0123}


def _usage(usage: dict[str, Any] | None = None) -> str:
    return _sse({"id": "gen-1", "model": MODEL, "choices": [], "usage": usage or USAGE})


DONE = "data: [DONE]\n\n"


def _events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "):
            out.append(json.loads(lines[1][6:]))
    return out


def _charges(gw: Gateway) -> list[tuple[str, int, int, str | None]]:
    """(request id, amount charged, estimated, estimate_reason) of every charge; no hold left,
    the balance equal to the ledger's sum."""
    state = ledger_state(gw.db_url, gw.account_id)
    assert state.holds == 0 and state.balance == state.ledger_sum
    db = Database(gw.db_url)
    try:
        conn = db.connect()
        with conn.read():
            rows = conn.all(
                "SELECT request_id, amount_micros, estimated, estimate_reason FROM ledger"
                " WHERE account_id = ? AND kind = 'charge'",
                (gw.account_id,),
            )
    finally:
        db.close_all()
    return [(str(r[0]), -int(r[1]), int(r[2]), r[3]) for r in rows]


def _stream(gw: Gateway, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(timeout=30) as c:
        r = c.post(gw.v1 + path, json=body, headers=gw.auth())
    assert r.status_code == 200 and "Traceback" not in r.text
    return r


def _raise_on(monkeypatch: pytest.MonkeyPatch, cls: Any, name: str, marker: bytes) -> None:
    """``cls.name(data)`` raises a RuntimeError when ``data`` holds ``marker`` (a bug stand-in)."""
    original: Callable[[Any, bytes], bytes] = getattr(cls, name)

    def failing(self: Any, data: bytes) -> bytes:
        if marker in data:
            raise RuntimeError("injected relay fault")
        return original(self, data)

    monkeypatch.setattr(cls, name, failing)


@pytest.mark.parametrize("path", ["/responses", "/chat/completions"])
def test_relay_that_raises_after_output_charges_what_was_relayed(
    scripted: Gateway, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The stream's own send (the Responses translator) or framing raises mid-stream: the
    request is charged the estimate of what was relayed (reason ``error``), not released, and
    the client's stream ends with an INTERNAL_ERROR event."""
    if path == "/responses":
        _raise_on(monkeypatch, StreamTranslator, "feed", b"BOOM")
        body: dict[str, Any] = {"model": MODEL, "input": "hi", "stream": True}
    else:
        _raise_on(monkeypatch, stream.SseRelay, "feed", b"BOOM")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    sse = [_content("Hello "), _content("world"), _content("BOOM"), _usage(), DONE]
    body["fake"] = {"sse": sse, "pause_ms": 20}
    r = _stream(scripted, path, body)
    if path == "/responses":
        events = _events(r.text)
        deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert deltas == "Hello world"
        assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
        assert events[-2]["code"] == "INTERNAL_ERROR"
        assert events[-1]["response"]["error"]["code"] == "INTERNAL_ERROR"
        assert "response.completed" not in r.text
    else:
        assert "Hello " in r.text and "world" in r.text and "[DONE]" not in r.text
        last = r.text.strip().split("\n\n")[-1]
        assert json.loads(last[6:])["error"]["code"] == "INTERNAL_ERROR"
    [(rid, amount, estimated, reason)] = _charges(scripted)
    assert rid == r.headers["x-request-id"] and estimated == 1 and reason == "error"
    assert amount > 0
    with httpx.Client() as c:
        metrics = c.get(scripted.url + "/metrics").text
    assert "dexto_gateway_stream_relay_errors_total 1.0" in metrics
