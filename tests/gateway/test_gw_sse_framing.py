"""SSE framing: any split of a valid upstream stream into reads gives the same relay and charge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, start_gateway
from _scripted import ScriptedUpstream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway.db import Database
from dexto.gateway.stream import SseRelay

_text = st.text(alphabet=st.sampled_from(list('ab c"\\\n{}é中:')), min_size=1, max_size=12)


@st.composite
def streams(draw: Any) -> tuple[bytes, list[str], bool]:
    """(upstream bytes, the content pieces, whether it carries a usage chunk)."""
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    done = draw(st.sampled_from(["data: [DONE]", "data:[DONE]", "data:  [DONE] "]))
    pieces = draw(st.lists(_text, min_size=1, max_size=6))
    with_usage = draw(st.booleans())
    usage_on_last = with_usage and draw(st.booleans())  # some providers: no choices:[] chunk
    usage = {"prompt_tokens": 9, "completion_tokens": len(pieces), "cost": 0.0000123}
    events: list[str] = []
    if draw(st.booleans()):
        events.append(": OPENROUTER PROCESSING")
    for i, p in enumerate(pieces):
        chunk = {
            "id": "gen-abc",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
        }
        if usage_on_last and i == len(pieces) - 1:
            chunk["usage"] = usage
        sep = draw(st.sampled_from(["data: ", "data:"]))
        events.append(sep + json.dumps(chunk, ensure_ascii=draw(st.booleans())))
        if i == 0 and draw(st.booleans()):
            events.append(": keep-alive")
    if with_usage and not usage_on_last:
        events.append("data: " + json.dumps({"id": "gen-abc", "choices": [], "usage": usage}))
    events.append(done)
    raw = "".join(e + eol * draw(st.sampled_from([2, 2, 2, 3, 4])) for e in events)
    return raw.encode(), pieces, with_usage


def _splits(draw: Any, data: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    out, last = [], 0
    for c in [*cuts, len(data)]:
        out.append(data[last:c])
        last = c
    return out


def _relay(reads: list[bytes], wants_usage: bool) -> tuple[bytes, bytes, SseRelay]:
    r = SseRelay(wants_usage)
    live = b"".join(r.feed(x) for x in reads) + r.finish()
    return live, r.tail(42), r


def _contents(out: bytes) -> list[str]:
    got = []
    for event in out.split(b"\n\n"):
        if event.startswith(b"data:") and b"[DONE]" not in event:
            doc = json.loads(event[5:])
            got += [c["delta"]["content"] for c in doc["choices"]]
    return got


@settings(max_examples=150, deadline=None)
@given(data=st.data(), wants_usage=st.booleans())
def test_any_split_gives_the_same_relay(data: Any, wants_usage: bool) -> None:
    raw, pieces, with_usage = data.draw(streams())
    reads = _splits(data.draw, raw)
    live, tail, relay = _relay(reads, wants_usage)
    whole_live, whole_tail, whole = _relay([raw], wants_usage)
    assert (live, tail) == (whole_live, whole_tail)
    assert (relay.usage, relay.tokens, relay.done) == (whole.usage, whole.tokens, True)
    assert relay.generation_id == "gen-abc"
    assert b"[DONE]" not in live and tail.endswith(b"data: [DONE]\n\n")
    # every content chunk relayed, in order, unchanged (one carrying usage comes at the end)
    assert _contents(live + tail) == pieces
    assert relay.tokens >= len(pieces)  # at least one token per content chunk
    usage_out = [e for e in tail.split(b"\n\n") if b'"usage"' in e]
    if wants_usage and with_usage:
        (event,) = usage_out
        doc = json.loads(event[5:])
        assert doc["usage"]["cost"] == 0.000042
        assert doc["usage"]["dexto_upstream_cost"] == 0.0000123
    else:
        assert usage_out == [] and b'"usage"' not in live


@pytest.fixture
def scripted(tmp_path: Any) -> Iterator[Gateway]:
    with ServerThread(ScriptedUpstream()) as srv:
        db = f"sqlite:///{tmp_path / 'gw.db'}"
        with start_gateway(db, srv.url + "/api/v1", credits_micros=100_000_000) as gw:
            yield gw


def _charged(gw: Gateway, rid: str) -> tuple[int, int]:
    db = Database(gw.db_url)
    conn = db.connect()
    try:
        with conn.read():
            row = conn.one(
                "SELECT amount_micros, estimated FROM ledger WHERE request_id = ?", (rid,)
            )
    finally:
        db.close_all()
    assert row is not None
    return -int(row[0]), int(row[1])


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_split_over_tcp_gives_the_same_charge(scripted: Gateway, data: Any) -> None:
    raw, pieces, with_usage = data.draw(streams())
    reads = [x.decode("latin-1") for x in _splits(data.draw, raw)]
    body = {
        "model": "fake/cheap",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    tokens = _relay([raw], True)[2].tokens
    results = []
    for script in ({"sse": [raw.decode("latin-1")]}, {"sse": reads, "pause_ms": 2}):
        req = json.dumps({**body, "script": script}).encode()
        headers = {**scripted.auth(), "Content-Type": "application/json"}
        with httpx.Client(timeout=30) as c:
            r = c.post(gw_v1(scripted), content=req, headers=headers)
        assert r.status_code == 200
        charge = _charged(scripted, r.headers["x-request-id"])
        # exact from usage.cost, else ceil(body/4) prompt + delivered tokens at list price
        expected = (13, 0) if with_usage else (-(-len(req) // 4) + 2 * tokens, 1)
        assert charge == expected
        results.append(r.content)
    assert results[0] == results[1]


def gw_v1(gw: Gateway) -> str:
    return gw.v1 + "/chat/completions"
