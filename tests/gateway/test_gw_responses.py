"""``POST /v1/responses`` against a running gateway: billed like chat completions, same errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from _gwhelpers import Gateway, ledger_state, start_gateway
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.responses_wire import StreamTranslator, to_chat

MODEL = "openai/gpt-4o-mini"
WORDS = "".join(f"w{i} " for i in range(20))


def _events(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "):
            doc = json.loads(lines[1][6:])
            assert doc["type"] == lines[0][7:]
            out.append(doc)
    return out


def test_non_streaming_is_charged_and_cost_is_the_charge(gateway: Gateway) -> None:
    with httpx.Client() as c:
        r = c.post(
            gateway.v1 + "/responses",
            json={"model": MODEL, "input": "hello", "instructions": "be brief"},
            headers=gateway.auth(),
        )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "response" and doc["status"] == "completed"
    assert doc["id"] == "resp_" + r.headers["x-request-id"].removeprefix("req_")
    [item] = doc["output"]
    assert item["type"] == "message" and item["content"][0]["text"] == WORDS
    assert doc["usage"]["output_tokens"] == 20
    assert doc["usage"]["total_tokens"] == doc["usage"]["input_tokens"] + 20
    state = ledger_state(gateway.db_url, gateway.account_id)
    [(rid, amount, _, estimated)] = state.charges
    assert rid == r.headers["x-request-id"] and estimated == 0 and state.holds == 0
    assert r.headers["x-dexto-cost"] == f"0.{-amount:06d}"
    assert doc["usage"]["cost"] == float(r.headers["x-dexto-cost"])


def test_streaming_event_sequence_and_charge(gateway: Gateway) -> None:
    with httpx.Client() as c:
        r = c.post(
            gateway.v1 + "/responses",
            json={"model": MODEL, "input": [{"role": "user", "content": "hi"}], "stream": True},
            headers=gateway.auth(),
        )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == WORDS
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == WORDS
    assert final["usage"]["output_tokens"] == 20
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert len(state.charges) == 1 and state.charges[0][3] == 0 and state.holds == 0


def test_tool_call_round_trip(gateway: Gateway) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        first = client.responses.create(model=MODEL, input="weather?", tools=tools)  # type: ignore[arg-type]
        [call] = [o for o in first.output if o.type == "function_call"]
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "fake"}
        second = client.responses.create(
            model=MODEL,
            tools=tools,  # type: ignore[arg-type]
            input=[
                {"role": "user", "content": "weather?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
            ],
        )
    assert second.output_text  # the loop ends: a text answer after the tool result
    assert len(ledger_state(gateway.db_url, gateway.account_id).charges) == 2


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": MODEL}, "'input'"),
        ({"model": MODEL, "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "bad\r\nmodel", "input": "x"}, "'model'"),
        ({"input": "x"}, "'model'"),
    ],
)
def test_bad_requests_are_400_before_any_hold(
    gateway: Gateway, body: dict[str, Any], fragment: str
) -> None:
    with httpx.Client() as c:
        r = c.post(gateway.v1 + "/responses", json=body, headers=gateway.auth())
    assert r.status_code == 400 and fragment in r.json()["error"]["message"]
    assert gateway.fake is not None and gateway.fake.stats.requests <= 1  # the start-up model list
    assert ledger_state(gateway.db_url, gateway.account_id).charges == []


def test_401_402_429_like_chat(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Any
) -> None:
    body = {"model": MODEL, "input": "hello"}
    with start_gateway(sqlite_url, fake[1], credits_micros=0, fake=fake[0]) as gw:
        with httpx.Client() as c:
            bad = c.post(gw.v1 + "/responses", json=body, headers=gw.auth("dxk_" + "0" * 40))
            broke = c.post(gw.v1 + "/responses", json=body, headers=gw.auth())
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "INVALID_API_KEY"
    assert broke.status_code == 402 and broke.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
    other = f"sqlite:///{tmp_path / 'rl.db'}"
    with start_gateway(other, fake[1], rate_limit_rps=0.001, rate_limit_burst=1) as gw:
        with httpx.Client() as c:
            ok = c.post(gw.v1 + "/responses", json=body, headers=gw.auth())
            limited = c.post(gw.v1 + "/responses", json=body, headers=gw.auth())
    assert ok.status_code == 200
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_translator_cut_stream_ends_failed() -> None:
    t = StreamTranslator({"model": MODEL}, "resp_x")
    head = b'data: {"id":"g","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a'
    out = t.feed(head) + t.feed(b'"}}]}\n\n: OPENROUTER PROCESSING\n\n')
    out += t.fail("UPSTREAM_STREAM_INTERRUPTED", "cut")
    kinds = [e["type"] for e in _events(out.decode())]
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"type": "function_call_output", "call_id": "c1", "output": {"a": 1}}, "tool"),
        ({"role": "developer", "content": "rules"}, "system"),
        ({"role": "assistant", "content": [{"type": "output_text", "text": "t"}]}, "assistant"),
    ],
)
def test_input_items_map_to_chat_roles(item: dict[str, Any], expected: str) -> None:
    problem, chat = to_chat({"model": MODEL, "input": [{"role": "user", "content": "x"}, item]})
    assert problem == "" and chat["messages"][-1]["role"] == expected


def test_upstream_failure_passes_through_and_is_not_charged(gateway: Gateway) -> None:
    body = {"model": MODEL, "input": "hello", "fake": {"status": 500}}
    with httpx.Client() as c:
        plain = c.post(gateway.v1 + "/responses", json=body, headers=gateway.auth())
        streamed = c.post(
            gateway.v1 + "/responses", json={**body, "stream": True}, headers=gateway.auth()
        )
    for r in (plain, streamed):
        assert r.status_code == 502 and r.json()["error"]["code"] == "UPSTREAM_ERROR"
    state = ledger_state(gateway.db_url, gateway.account_id)
    assert state.charges == [] and state.holds == 0


def _chat_sse(n: int, tool: bool) -> bytes:
    head = '{"id":"g","created":1,"model":"m","choices":[{"index":0,"delta":'
    out = ": OPENROUTER PROCESSING\n\n"
    for i in range(n):
        if tool:
            delta = (
                '{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"'
                + f"a{i}"
                + '"}}]}'
            )
        else:
            delta = '{"content":"' + f"w{i} " + '"}'
        out += f'data: {head}{delta},"finish_reason":null}}]}}\n\n'
    out += f'data: {head}{{}},"finish_reason":"stop"}}]}}\n\n'
    out += 'data: {"id":"g","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    return (out + "data: [DONE]\n\n").encode()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 6),
    tool=st.booleans(),
    cuts=st.lists(st.integers(1, 2000), max_size=12),
)
def test_stream_translation_ignores_chunk_boundaries(n: int, tool: bool, cuts: list[int]) -> None:
    data = _chat_sse(n, tool)
    whole = StreamTranslator({"model": MODEL}, "resp_x").feed(data)
    t = StreamTranslator({"model": MODEL}, "resp_x")
    pieces, last = [], 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        pieces.append(t.feed(data[last:cut]))
        last = cut
    split = b"".join(pieces)
    events = _events(split.decode())

    assert events == _events(whole.decode())  # created_at is the chunks' "created"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]
    assert final["type"] == "response.completed" and final["response"]["usage"]["total_tokens"] == 5
    if tool and n:
        [item] = final["response"]["output"]
        assert item["arguments"] == "".join(f"a{i}" for i in range(n))
    elif n:
        assert final["response"]["output"][0]["content"][0]["text"] == "".join(
            f"w{i} " for i in range(n)
        )


def test_responses_requests_have_their_own_metrics_route(gateway: Gateway) -> None:
    """Every answer of /v1/responses is counted under route="responses", chat's stay apart."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client() as c:
        ok = c.post(
            gateway.v1 + "/responses",
            json={"model": MODEL, "input": "hello"},
            headers=gateway.auth(),
        )
        streamed = c.post(
            gateway.v1 + "/responses",
            json={"model": MODEL, "input": "hello", "stream": True},
            headers=gateway.auth(),
        )
        bad = c.post(gateway.v1 + "/responses", json={"model": MODEL}, headers=gateway.auth())
        unauth = c.post(gateway.v1 + "/responses", json={"model": MODEL, "input": "x"})
        plain = c.post(gateway.v1 + "/chat/completions", json=chat, headers=gateway.auth())
        metrics = c.get(gateway.url + "/metrics").text
    assert (ok.status_code, streamed.status_code, bad.status_code) == (200, 200, 400)
    assert (unauth.status_code, plain.status_code) == (401, 200)
    for line in (
        'dexto_gateway_requests_total{route="responses",status="200"} 2.0',
        'dexto_gateway_requests_total{route="responses",status="400"} 1.0',
        'dexto_gateway_requests_total{route="responses",status="401"} 1.0',
        'dexto_gateway_requests_total{route="chat_completions",status="200"} 1.0',
    ):
        assert line in metrics, (line, [m for m in metrics.splitlines() if "requests_total" in m])


@pytest.mark.parametrize(
    ("field", "levels", "refused"),
    [
        ("metadata", 128, False),
        ("metadata", 129, True),
        ("text", 128, False),
        ("text", 129, True),
        ("tools", 129, True),
        ("reasoning", 129, True),
        ("tool_choice", 129, True),
    ],
)
def test_echoed_fields_are_bounded_at_128_levels(field: str, levels: int, refused: bool) -> None:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    problem, _ = to_chat({"model": "m", "input": "hi", field: value})
    assert problem.startswith(f"'{field}' is nested more than 128 levels deep") is refused
