"""The fake upstream on its own: determinism, SSE with usage.cost, tools, knobs, echo headers."""

from __future__ import annotations

import json

import httpx
import pytest

from dexto.devtools.fake_upstream import FakeOptions, FakeUpstream

Fake = tuple[FakeUpstream, str]
BODY = {"model": "fake/cheap", "messages": [{"role": "user", "content": "hi"}]}


def _post(fake: Fake, body: dict[str, object], **headers: str) -> httpx.Response:
    with httpx.Client(timeout=10) as c:
        return c.post(fake[1] + "/chat/completions", json=body, headers=headers)


def test_models_on_both_paths(fake: Fake) -> None:
    base = fake[1].removesuffix("/api/v1")
    with httpx.Client() as c:
        for path in ("/models", "/v1/models", "/api/v1/models"):
            data = c.get(base + path).json()["data"]
            assert {"id", "pricing", "context_length"} <= set(data[0])


def test_deterministic_answer_and_echo(fake: Fake) -> None:
    a = _post(fake, BODY, Authorization="Bearer sk-or-abcdef123456")
    b = _post(fake, BODY, Authorization="Bearer sk-or-abcdef123456")
    assert a.json() == b.json()
    doc = a.json()
    assert doc["model"] == "fake/cheap"
    assert doc["usage"]["completion_tokens"] == 20 and doc["usage"]["cost"] > 0
    seen = a.headers["x-fake-auth-seen"]
    assert seen.startswith("sha256:") and seen.endswith(";last4:3456")
    assert "sk-or-abcdef123456" not in a.text + str(a.headers)
    assert _post(fake, BODY).headers["x-fake-auth-seen"] == "none"


def test_sse_with_final_usage_chunk(fake: Fake) -> None:
    r = _post(
        fake,
        {**BODY, "stream": True, "stream_options": {"include_usage": True}},
        **{"X-Fake-Chunks": "5"},
    )
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.text.startswith(": OPENROUTER PROCESSING\n\n") and data[-1] == "[DONE]"
    usage = json.loads(data[-2])["usage"]
    assert usage["completion_tokens"] == 5 and "cost" in usage
    assert len([d for d in data if '"content": "w' in d]) == 5
    assert r.headers["x-fake-usage-requested"] == "include=false;stream_include_usage=true"
    without = _post(fake, {**BODY, "stream": True})
    assert '"usage"' not in without.text  # usage only when asked for


@pytest.mark.parametrize(
    ("knob", "status"), [({"X-Fake-Status": "402"}, 402), ({"X-Fake-Error": "500"}, 500)]
)
def test_header_knobs(fake: Fake, knob: dict[str, str], status: int) -> None:
    r = _post(fake, BODY, **knob)
    assert r.status_code == status and r.json()["error"]["code"] == status


def test_body_knobs_and_drop(fake: Fake) -> None:
    usage = _post(fake, {**BODY, "fake": {"no_cost": True}}).json()["usage"]
    assert usage["total_tokens"] > 0 and not {"cost", "cost_details", "is_byok"} & set(usage)
    assert _post(fake, {**BODY, "fake": {"cost": 0.5}}).json()["usage"]["cost"] == 0.5
    assert _post(fake, {**BODY, "fake": {"malformed": True}}).text.endswith("[")
    with pytest.raises(httpx.HTTPError):
        _post(fake, {**BODY, "stream": True, "fake": {"drop_after": 2}})


def test_tool_call_streaming(fake: Fake) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    r = _post(fake, {**BODY, "tools": tools, "stream": True})
    args = ""
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for ch in json.loads(line[6:])["choices"]:
                for tc in ch["delta"].get("tool_calls", []):
                    args += tc["function"].get("arguments", "")
    assert args == '{"q":"fake"}'


def test_tool_loop_ends_after_a_tool_result(fake: Fake) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    history = [
        *BODY["messages"],
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    first = _post(fake, {**BODY, "tools": tools}).json()["choices"][0]
    after = _post(fake, {**BODY, "tools": tools, "messages": history}).json()["choices"][0]
    forced = _post(
        fake, {**BODY, "tools": tools, "messages": history, "tool_choice": "required"}
    ).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls" and forced["finish_reason"] == "tool_calls"
    assert after["finish_reason"] == "stop" and after["message"]["content"]


def test_options_merge() -> None:
    o = FakeOptions().merged({"latency_ms": "5", "malformed": "1", "unknown": "x"})
    assert o.latency_ms == 5.0 and o.malformed is True
