"""``/v1/responses`` money paths: upstream shapes the translator cannot use, a relay that raises
mid-stream, deeply nested bodies. A request that delivered output is charged exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, ledger_state, start_gateway
from _scripted import ScriptedUpstream
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway import responses, stream
from dexto.gateway.db import Database
from dexto.gateway.responses_wire import StreamTranslator, to_response

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


DEEP_CHUNK = '{"choices":[{"index":0,"delta":{"content":' + "[" * 100_000 + "]" * 100_000 + "}}]}"
BAD_CHUNKS = {
    "tool_calls not a list": {"choices": [{"index": 0, "delta": {"tool_calls": 1}}]},
    "unhashable index": {
        "choices": [
            {"delta": {"tool_calls": [{"index": [1], "function": {"name": "f", "arguments": "x"}}]}}
        ]
    },
    "nested too deeply": DEEP_CHUNK,
}


@pytest.mark.parametrize("bad", list(BAD_CHUNKS), ids=list(BAD_CHUNKS))
def test_stream_chunks_the_translator_cannot_use_are_skipped(scripted: Gateway, bad: str) -> None:
    sse = [_content("Hello "), _sse(BAD_CHUNKS[bad]), _content("world"), _usage(), DONE]
    body = {"model": MODEL, "input": "hi", "stream": True, "fake": {"sse": sse}}
    r = _stream(scripted, "/responses", body)
    events = _events(r.text)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "Hello world"
    final = events[-1]
    assert final["type"] == "response.completed", [e["type"] for e in events][-3:]
    [(rid, amount, estimated, _)] = _charges(scripted)
    assert rid == r.headers["x-request-id"] and estimated == 0 and amount == 12_300
    assert final["response"]["usage"]["cost"] == 0.0123


def test_stream_usage_with_bad_counts_is_translated(scripted: Gateway) -> None:
    usage = {"prompt_tokens": "abc", "completion_tokens": [1], "total_tokens": {}, "cost": 0.0123}
    sse = [_content("Hello"), _usage(usage), DONE]
    body = {"model": MODEL, "input": "hi", "stream": True, "fake": {"sse": sse}}
    final = _events(_stream(scripted, "/responses", body).text)[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["usage"]["input_tokens"] == 0
    assert final["response"]["usage"]["total_tokens"] == 0
    [(_, amount, estimated, _)] = _charges(scripted)
    assert (amount, estimated) == (12_300, 0)


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


def _answer(**message: Any) -> dict[str, Any]:
    return {
        "id": "gen-2",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": 5}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.004},
    }


ODD_ANSWERS: dict[str, tuple[dict[str, Any], int]] = {  # the answer, its output items
    "tool_calls not a list": (_answer(content="hi", tool_calls=5), 1),
    "choices of numbers": ({**_answer(content="hi"), "choices": [1]}, 0),
    "token counts and tool call members not numbers or strings": (
        {
            **_answer(
                content="hi", tool_calls=[{"id": 1, "function": {"name": [], "arguments": {}}}]
            ),
            "created": "x",
            "model": {},
            "usage": {
                "prompt_tokens": "abc",
                "completion_tokens": 2.5,
                "total_tokens": -1,
                "prompt_tokens_details": {"cached_tokens": "x"},
                "cost": 0.004,
            },
        },
        2,
    ),
}


@pytest.mark.parametrize("name", list(ODD_ANSWERS), ids=list(ODD_ANSWERS))
def test_charged_answers_the_translator_finds_odd_are_returned(
    scripted: Gateway, name: str
) -> None:
    answer, items = ODD_ANSWERS[name]
    body = {"model": MODEL, "input": "hi", "fake": {"json": answer}}
    with httpx.Client(timeout=30) as c:
        r = c.post(scripted.v1 + "/responses", json=body, headers=scripted.auth())
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "response" and len(doc["output"]) == items
    for item in doc["output"]:
        if item["type"] == "function_call":
            assert item["call_id"].startswith("call_") and item["name"] == item["arguments"] == ""
    assert doc["usage"]["cost"] == float(r.headers["x-dexto-cost"]) == 0.004
    [(rid, amount, estimated, _)] = _charges(scripted)
    assert rid == r.headers["x-request-id"] and (amount, estimated) == (4000, 0)


def test_untranslatable_charged_answer_says_what_was_charged(
    scripted: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("injected translation fault")

    monkeypatch.setattr(responses, "to_response", broken)
    body = {"model": MODEL, "input": "hi", "fake": {"json": _answer(content="hi")}}
    with httpx.Client(timeout=30) as c:
        r = c.post(scripted.v1 + "/responses", json=body, headers=scripted.auth())
        metrics = c.get(scripted.url + "/metrics").text
    assert r.status_code == 502 and "Traceback" not in r.text and "injected" not in r.text
    # counted as what the client got
    assert 'dexto_gateway_requests_total{route="responses",status="502"} 1.0' in metrics
    assert 'route="responses",status="200"' not in metrics
    err = r.json()["error"]
    assert err["code"] == "RESPONSE_TRANSLATION_FAILED"
    assert f"charged ${r.headers['x-dexto-cost']}" in err["message"]
    [(rid, amount, estimated, _)] = _charges(scripted)
    assert rid == r.headers["x-request-id"] and (amount, estimated) == (4000, 0)


@pytest.mark.parametrize("deep", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 1_500])
def test_deeply_nested_bodies_are_400_as_on_chat(scripted: Gateway, deep: bytes) -> None:
    body = b'{"model":"fake/cheap","input":' + deep + b"}"
    headers = {**scripted.auth(), "content-type": "application/json"}
    with httpx.Client(timeout=30) as c:
        answers = [
            c.post(scripted.v1 + p, content=body, headers=headers)
            for p in ("/responses", "/chat/completions")
        ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["message"] == "The request body is nested too deeply."
    assert _charges(scripted) == []


_KEYS = [
    "choices", "delta", "message", "content", "tool_calls", "index", "function", "name",
    "arguments", "id", "usage", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_tokens_details", "cached_tokens", "completion_tokens_details", "reasoning_tokens",
    "finish_reason", "created", "model", "reasoning", "error", "code", "cost",
]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
_OBJECT = st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=5)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(_OBJECT, max_size=4))
def test_stream_translator_takes_any_chunk_shape(chunks: list[dict[str, Any]]) -> None:
    t = StreamTranslator({"model": MODEL}, "resp_x")
    out = b"".join(t.feed(f"data: {json.dumps(c)}\n\n".encode()) for c in chunks)
    out += t.feed(b"data: [DONE]\n\n") + t.fail("X", "cut")
    kinds = [e["type"] for e in _events(out.decode())]
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed")


@settings(max_examples=300, deadline=None)
@given(chat=_OBJECT)
def test_to_response_takes_any_answer_shape(chat: dict[str, Any]) -> None:
    doc = to_response(chat, {"model": MODEL}, "resp_x")
    json.dumps(doc)
    assert doc["object"] == "response" and isinstance(doc["output"], list)


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("field", "doc"),
    [
        ("text", '{"format":{"type":"json_schema","name":"x","schema":%s}}'),
        ("tools", '[{"type":"function","name":"f","parameters":%s}]'),
        ("metadata", '{"m":%s}'),
    ],
)
@pytest.mark.parametrize("depth", [300, 970])
def test_a_field_echoed_too_deeply_nested_is_400_before_any_hold(
    scripted: Gateway, stream: bool, field: str, doc: str, depth: int
) -> None:
    """Fields the Response object echoes are encoded again in the answer: one nested deeper than
    that can take is refused before the request is admitted (it was a charged 502, or a stream
    cut without its ending event)."""
    script = json.dumps({"json": {"id": "gen-1", "choices": [], "usage": USAGE}})
    body = (
        f'{{"model":"{MODEL}","input":"hi","stream":{json.dumps(stream)},"fake":{script},'
        f'"{field}":{doc % _deep(depth)}}}'
    )
    headers = {**scripted.auth(), "content-type": "application/json"}
    with httpx.Client(timeout=30) as c:
        r = c.post(scripted.v1 + "/responses", content=body.encode(), headers=headers)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert f"'{field}' is nested more than 128 levels deep" in err["message"]
    assert _charges(scripted) == []
