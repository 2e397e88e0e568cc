"""The fake upstream and the gateway's Responses translation against documented golden shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway

from dexto.devtools.fake_upstream import FakeUpstream

PRICING_KEYS = {
    "prompt",
    "completion",
    "request",
    "image",
    "web_search",
    "internal_reasoning",
    "input_cache_read",
    "input_cache_write",
}
GOLDEN = Path(__file__).resolve().parent / "golden"
Fake = tuple[FakeUpstream, str]
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def golden(name: str) -> Any:
    return json.loads((GOLDEN / f"{name}.json").read_text())["sample"]


def mismatches(got: Any, want: Any, path: str = "$") -> list[str]:
    """Where ``got`` differs from ``want`` in keys or JSON type (null matches any type)."""
    if got is None or want is None:
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {type(got).__name__}, expected object"]
        out = [f"{path}.{k}: missing" for k in want.keys() - got.keys()]
        out += [f"{path}.{k}: not documented" for k in got.keys() - want.keys()]
        for k in want.keys() & got.keys():
            out += mismatches(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: {type(got).__name__}, expected array"]
        return [m for item in got for m in mismatches(item, want[0], f"{path}[]")] if want else []
    number = (int, float)
    if isinstance(want, bool) or isinstance(got, bool):
        ok = isinstance(want, bool) and isinstance(got, bool)
    elif isinstance(want, number):
        ok = isinstance(got, number)
    else:
        ok = type(got) is type(want)
    return [] if ok else [f"{path}: {type(got).__name__}, expected {type(want).__name__}"]


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(timeout=10) as c:
        return c.post(url, json=body, headers=headers)


@pytest.mark.parametrize("tools", [False, True])
def test_fake_chat_completion_is_openrouter_shaped(fake: Fake, tools: bool) -> None:
    body = {**BODY, "tools": TOOLS} if tools else BODY
    r = post(fake[1] + "/chat/completions", body)
    want = golden("openrouter_chat_completion")
    if tools:
        want["choices"][0]["message"]["tool_calls"] = [
            {"id": "c", "index": 0, "type": "function", "function": {"name": "", "arguments": ""}}
        ]
    assert mismatches(r.json(), want) == []
    assert r.headers["x-generation-id"] == r.json()["id"]


def test_fake_stream_is_openrouter_shaped(fake: Fake) -> None:
    r = post(fake[1] + "/chat/completions", {**BODY, "stream": True, "usage": {"include": True}})
    assert r.text.startswith(": OPENROUTER PROCESSING\n\n")
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    for chunk in chunks[:-1]:
        assert mismatches(chunk, golden("openrouter_chat_chunk")) == []
    assert mismatches(chunks[-1], golden("openrouter_usage_chunk")) == []


def test_fake_mid_stream_error_is_openrouter_shaped(fake: Fake) -> None:
    r = post(
        fake[1] + "/chat/completions",
        {**BODY, "stream": True},
        **{"X-Fake-Stream-Error-After": "2"},
    )
    data = sse_data(r.text)
    assert "[DONE]" not in data and len(data) == 3
    last = json.loads(data[-1])
    assert mismatches(last, golden("openrouter_stream_error_chunk")) == []
    assert last["choices"][0]["finish_reason"] == "error"


def test_fake_models_are_openrouter_shaped(fake: Fake) -> None:
    with httpx.Client() as c:
        data = c.get(fake[1] + "/models").json()["data"]
    want = golden("openrouter_model")
    want.pop("pricing")
    for entry in data:
        pricing = entry.pop("pricing")
        assert mismatches(entry, want) == [], entry["id"]
        # The documented Pricing object: prompt and completion always, the rest when priced.
        assert {"prompt", "completion"} <= set(pricing) <= PRICING_KEYS
        assert all(isinstance(v, str) and float(v) >= 0 for v in pricing.values())
        assert "request" not in pricing  # none of these models has a per-request price


def check_response(doc: dict[str, Any]) -> None:
    """A Response object against the golden one; each output item against its own type."""
    want = golden("openai_response")
    items = {
        "message": want["output"][0],
        "function_call": golden("openai_response_events")["function_call.done"]["item"],
    }
    doc = dict(doc)
    output = doc.pop("output")
    want.pop("output")
    assert mismatches(doc, want) == []
    for item in output:
        assert mismatches(item, items[item["type"]]) == [], item["type"]


def _response_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(d) for d in sse_data(text)]


def _check_events(events: list[dict[str, Any]]) -> None:
    samples = golden("openai_response_events")
    for ev in events:
        kind = ev["type"]
        item = ev.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            kind = "function_call." + kind.rsplit(".", 1)[1]
        if kind.startswith("response.") and "response" in ev:
            assert set(ev) == {"type", "sequence_number", "response"}
            check_response(ev["response"])
        else:
            assert mismatches(ev, samples[kind]) == [], kind


@pytest.mark.parametrize("tools", [False, True])
def test_fake_responses_endpoint(fake: Fake, tools: bool) -> None:
    body: dict[str, Any] = {"model": "openai/gpt-4o-mini", "input": "hi"}
    if tools:
        body["tools"] = [{"type": "function", "name": "get_weather", "parameters": {}}]
    doc = post(fake[1] + "/responses", body).json()
    check_response(doc)
    assert doc["output"][0]["type"] == ("function_call" if tools else "message")
    events = _response_events(post(fake[1] + "/responses", {**body, "stream": True}).text)
    _check_events(events)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["total_tokens"] > 0


def test_gateway_responses_match_the_documented_shapes(gateway: Gateway) -> None:
    body = {"model": "openai/gpt-4o-mini", "input": "hi"}
    doc = post(gateway.v1 + "/responses", body, **gateway.auth()).json()
    check_response(doc)
    text = post(gateway.v1 + "/responses", {**body, "stream": True}, **gateway.auth()).text
    _check_events(_response_events(text))
    cut = post(
        gateway.v1 + "/responses",
        {**body, "stream": True, "fake": {"stream_error_after": 1}},
        **gateway.auth(),
    ).text
    events = _response_events(cut)
    _check_events(events)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(
    ("got", "problem"),
    [
        ({"a": 1}, "$.b: missing"),
        ({"a": 1, "b": "x", "c": 0}, "$.c: not documented"),
        ({"a": "1", "b": "x"}, "$.a: str, expected int"),
        ({"a": None, "b": None}, None),
    ],
)
def test_mismatches_rule(got: dict[str, Any], problem: str | None) -> None:
    found = mismatches(got, {"a": 1, "b": "y"})
    assert found == ([problem] if problem else [])
