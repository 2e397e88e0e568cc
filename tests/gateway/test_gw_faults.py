"""Faults: each ends with the right status, the right charge (or none) and no leaked hold."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, chat_body, ledger_state, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import free_port


def _post(gw: Gateway, body: dict[str, Any] | bytes, **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=30) as c:
        if isinstance(body, bytes):
            return c.post(gw.v1 + "/chat/completions", content=body, **kw)
        return c.post(gw.v1 + "/chat/completions", json=body, headers=gw.auth(), **kw)


def _wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _no_charge(gw: Gateway) -> None:
    state = ledger_state(gw.db_url, gw.account_id)
    assert state.charges == [] and state.holds == 0 and state.balance == 1_000_000


@pytest.mark.parametrize("status", [500, 503, 401, 402, 403])
def test_upstream_5xx_and_account_errors_are_redacted_502(gateway: Gateway, status: int) -> None:
    r = _post(gateway, chat_body(fake={"status": status}))
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "UPSTREAM_ERROR" and "not charged" in err["message"]
    assert "fake upstream error" not in r.text and "Insufficient credits" not in r.text
    _no_charge(gateway)


@pytest.mark.parametrize("status", [400, 404, 422, 429])
def test_upstream_4xx_is_relayed_without_charge(gateway: Gateway, status: int) -> None:
    r = _post(gateway, chat_body(fake={"status": status}))
    assert r.status_code == status
    assert r.json() == {"error": {"code": status, "message": "fake upstream error"}}
    if status == 429:
        assert r.headers["retry-after"] == "1"
    _no_charge(gateway)


def test_upstream_timeout_is_504_without_charge(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(sqlite_url, fake[1], upstream_timeout_s=0.3) as gw:
        for stream in (False, True):
            r = _post(gw, chat_body(stream=stream, fake={"hang_ms": 5000}))
            assert r.status_code == 504
            assert r.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
        _no_charge(gw)


def test_upstream_unreachable_is_502(sqlite_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/v1"
    with start_gateway(sqlite_url, dead) as gw:
        r = _post(gw, chat_body())
        assert r.status_code == 502
        _no_charge(gw)


def test_malformed_json_from_upstream_is_502_without_charge(gateway: Gateway) -> None:
    r = _post(gateway, chat_body(fake={"malformed": True}))
    assert r.status_code == 502
    _no_charge(gateway)


def test_non_streaming_body_cut_is_502_without_charge(gateway: Gateway) -> None:
    r = _post(gateway, chat_body(fake={"drop_after": 0}))
    assert r.status_code == 502
    _no_charge(gateway)


def _sse_events(text: str) -> list[str]:
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def test_stream_cut_midway_charges_estimate_and_says_so(gateway: Gateway) -> None:
    r = _post(gateway, chat_body(stream=True, max_tokens=50, fake={"drop_after": 5}))
    assert r.status_code == 200
    events = _sse_events(r.text)
    assert len([e for e in events if '"content"' in e]) == 5
    assert json.loads(events[-1])["error"]["code"] == "UPSTREAM_STREAM_INTERRUPTED"
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert state.holds == 0 and len(state.charges) == 1
    rid, amount, _, estimated = state.charges[0]
    assert estimated == 1 and rid == r.headers["x-request-id"]
    # gpt-4o-mini: ceil(body/4) prompt tokens at 0.15/M + 5 completion tokens at 0.6/M
    body_len = len(
        json.dumps(chat_body(stream=True, max_tokens=50, fake={"drop_after": 5})).encode()
    )
    assert amount == -1 * -(-((-(-body_len // 4)) * 15 + 5 * 60) // 100)


def test_malformed_stream_settles_estimated(gateway: Gateway) -> None:
    r = _post(gateway, chat_body(stream=True, fake={"malformed": True}))
    assert r.status_code == 200 and "data: {not json" in r.text
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert state.holds == 0 and [c[3] for c in state.charges] == [1]


def test_client_disconnect_cancels_upstream_and_settles_estimate(gateway: Gateway) -> None:
    assert gateway.fake is not None
    body = chat_body(stream=True, fake={"chunk_delay_ms": 100, "chunks": 50})
    with httpx.Client(timeout=30) as c:
        with c.stream(
            "POST", gateway.v1 + "/chat/completions", json=body, headers=gateway.auth()
        ) as r:
            assert r.status_code == 200
            got = 0
            for line in r.iter_lines():
                if line.startswith("data:"):
                    got += 1
                if got == 3:
                    break
    # closing the response drops the connection; the gateway must cancel the upstream stream
    _wait_for(lambda: gateway.fake.stats.streams_cancelled == 1, "upstream cancellation")
    _wait_for(
        lambda: len(ledger_state(gateway.db_url, gateway.account_id).charges) == 1,
        "the estimated charge",
    )
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert state.holds == 0 and state.charges[0][3] == 1
    assert gateway.fake.stats.streams_completed == 0
    assert state.balance == state.ledger_sum


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "INVALID_REQUEST"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "INVALID_REQUEST"),
        (
            b'{"messages": [{"role": "user", "content": "x"}]}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (
            b'{"model": 5, "messages": []}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (
            b'{"model": "m", "messages": "hi"}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": -3}',
            {"Content-Type": "application/json"},
            400,
            "INVALID_REQUEST",
        ),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400, "INVALID_REQUEST"),
        (
            b"model=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (b'{"model": "m"}', {"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_bad_bodies(
    gateway: Gateway, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    r = _post(gateway, content, headers={**headers, **gateway.auth()})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.headers["x-request-id"].startswith("req_")
    _no_charge(gateway)


def test_oversized_body_is_413(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> None:
    with start_gateway(sqlite_url, fake[1], max_body_bytes=2_000) as gw:
        big = json.dumps(chat_body(messages=[{"role": "user", "content": "x" * 5_000}])).encode()
        r = _post(gw, big, headers={"Content-Type": "application/json", **gw.auth()})
        assert r.status_code == 413 and r.json()["error"]["code"] == "REQUEST_TOO_LARGE"

        def chunks() -> Any:
            yield big[:1000]
            yield big[1000:]

        with httpx.Client() as c:  # chunked upload: no Content-Length to check up front
            r2 = c.post(
                gw.v1 + "/chat/completions",
                content=chunks(),
                headers={"Content-Type": "application/json", **gw.auth()},
            )
        assert r2.status_code == 413
        _no_charge(gw)


def test_wrong_method_and_unknown_path(gateway: Gateway) -> None:
    with httpx.Client() as c:
        r = c.get(gateway.v1 + "/chat/completions", headers=gateway.auth())
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert c.get(gateway.url + "/nope").json()["error"]["code"] == "NOT_FOUND"
