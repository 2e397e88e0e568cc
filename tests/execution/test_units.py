"""Pure pieces: SSE decoding, message conversion, cloud extras, the public surface."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import httpx
import pytest

import dexto.llm.execution as execution
from dexto.errors import ConfigError, MissingExtraError, UpstreamError
from dexto.llm.execution import Model, open_model
from dexto.llm.execution._sse import iter_sse
from dexto.llm.execution._target import Target
from dexto.llm.execution.adapters import adapter_for
from dexto.llm.execution.adapters.anthropic import to_anthropic
from dexto.llm.execution.adapters.bedrock import to_converse
from dexto.llm.execution.adapters.google import to_gemini

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather?"},
    {
        "role": "assistant",
        "content": "checking",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "w", "arguments": '{"city":"P"}'},
            },
            {"id": "c2", "type": "function", "function": {"name": "t", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "c2", "content": "noon"},
]


def test_public_surface_is_curated() -> None:
    assert set(execution.__all__) == {
        "ChatResult",
        "Done",
        "Model",
        "RouteTaken",
        "StreamEvent",
        "TextDelta",
        "ToolCall",
        "ToolCallDelta",
        "Usage",
        "open_model",
    }
    for name in execution.__all__:
        assert getattr(execution, name) is not None


def test_sse_decoder_handles_events_comments_multiline_and_done() -> None:
    lines = [
        ": ping",
        "event: a",
        'data: {"x":',
        "data: 1}",
        "",
        "data: 2",
        "",
        "data: [DONE]",
        "",
        "data: 3",
        "",
    ]
    assert list(iter_sse(lines)) == [("a", '{"x":\n1}'), ("message", "2")]


def test_anthropic_conversion_merges_tool_results_into_one_user_turn() -> None:
    system, turns = to_anthropic(CONVERSATION)
    assert system == "be brief"
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert turns[1]["content"][1]["input"] == {"city": "P"}
    assert [b["tool_use_id"] for b in turns[2]["content"]] == ["c1", "c2"]


def test_gemini_conversion_names_function_responses() -> None:
    system, contents = to_gemini(CONVERSATION)
    assert system == "be brief"
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    responses = [p["functionResponse"] for p in contents[2]["parts"]]
    assert responses == [
        {"name": "w", "response": {"temp": 21}},
        {"name": "t", "response": {"result": "noon"}},
    ]


def test_google_key_travels_in_a_header_never_in_the_url() -> None:
    from dexto._secret import Secret

    target = Target(
        "google",
        "google",
        "gemini-2.0-flash",
        "http://g.test/v1beta",
        Secret("AIza-secret"),
        "env:GEMINI_API_KEY",
        "Google",
    )
    call = adapter_for("google").build(
        target, [{"role": "user", "content": "hi"}], None, {"max_tokens": 5, "stop": "x"}, True
    )
    assert "AIza-secret" not in call.url and call.url.endswith(":streamGenerateContent?alt=sse")
    assert call.headers["x-goog-api-key"] == "AIza-secret"
    assert call.body["generationConfig"] == {"maxOutputTokens": 5, "stopSequences": ["x"]}


def test_bedrock_conversion_and_parsing() -> None:
    system, turns = to_converse(CONVERSATION)
    assert system == [{"text": "be brief"}]
    assert turns[1]["content"][1] == {
        "toolUse": {"toolUseId": "c1", "name": "w", "input": {"city": "P"}}
    }
    assert turns[2]["content"][0]["toolResult"]["toolUseId"] == "c1"
    target = Target("bedrock", "bedrock", "m", None, None, "env:AWS_PROFILE+us-east-1", "Bedrock")
    reply = adapter_for("bedrock").parse(
        target,
        {
            "output": {
                "message": {
                    "content": [
                        {"text": "hi"},
                        {"toolUse": {"toolUseId": "u1", "name": "w", "input": {"a": 1}}},
                    ]
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 4, "outputTokens": 2},
        },
    )
    assert reply.text == "hi" and reply.tool_calls[0].parsed_arguments() == {"a": 1}
    assert reply.finish_reason == "tool_calls" and reply.prompt_tokens == 4
    parser = adapter_for("bedrock").stream_parser(target)
    events = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "he"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {
            "contentBlockStart": {
                "start": {"toolUse": {"toolUseId": "u2", "name": "w"}},
                "contentBlockIndex": 1,
            }
        },
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"a":'}}, "contentBlockIndex": 1}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": "2}"}}, "contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "tool_use"}},
        {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 3}}},
    ]
    for ev in events:
        parser.feed("bedrock", json.dumps(ev))
    streamed = parser.reply()
    assert streamed.text == "he" and streamed.tool_calls[0].arguments == '{"a":2}'
    with pytest.raises(UpstreamError, match="throttlingException mid-stream"):
        parser.feed("bedrock", json.dumps({"throttlingException": {"message": "slow down"}}))


class _FakeBedrockClient:
    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        self.kwargs = kwargs
        return {
            "output": {"message": {"content": [{"text": "from bedrock"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 2},
        }


def test_bedrock_route_runs_through_the_converse_client() -> None:
    env = dict(os.environ, AWS_PROFILE="p", AWS_REGION="us-east-1")
    with open_model("bedrock/anthropic.claude-3-haiku", env=env) as model:
        client = _FakeBedrockClient()
        model._bedrock._client = client
        result = model.complete("hi", max_tokens=7)
    assert result.text == "from bedrock" and result.route.route == "direct"
    assert client.kwargs["modelId"] == "anthropic.claude-3-haiku"
    assert client.kwargs["inferenceConfig"] == {"maxTokens": 7}


def test_bedrock_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # The extra may be installed: a None entry in sys.modules makes `import boto3` fail.
    monkeypatch.setitem(sys.modules, "boto3", None)
    env = dict(os.environ, AWS_PROFILE="p", AWS_REGION="us-east-1")
    with open_model("bedrock/anthropic.claude-3-haiku", env=env) as model:
        with pytest.raises(MissingExtraError) as info:
            model.complete("hi")
    assert "pip install 'dexto[bedrock]'" in info.value.fix


def test_vertex_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("google.auth", "google.auth.transport.requests"):
        monkeypatch.setitem(sys.modules, name, None)
    env = dict(os.environ, GOOGLE_VERTEX_PROJECT="proj")
    with open_model("vertex/gemini-2.0-flash", env=env) as model:
        with pytest.raises(MissingExtraError) as info:
            model.complete("hi")
    assert "pip install 'dexto[vertex]'" in info.value.fix
    assert info.value.to_dict()["error"]["code"] == "MISSING_EXTRA"


def test_local_gguf_is_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError, match="cannot be run"):
        open_model("local/model.gguf")


def test_no_selection_is_a_typed_error() -> None:
    with pytest.raises(ConfigError) as info:
        open_model()
    assert info.value.to_dict()["error"]["code"] == "INVALID_MODEL_ID"


def test_agent_defaults_and_key_reference(tmp_path: Any) -> None:
    agent = tmp_path / "a.yml"
    agent.write_text(
        "llm:\n  provider: openai-compatible\n  model: m1\n"
        "  baseURL: http://oc.test/v1\n  apiKey: $MY_KEY\n  maxOutputTokens: 42\n"
        "  temperature: 0.5\n"
    )
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    env = dict(os.environ, MY_KEY="my-secret-ref-key")
    with open_model(agent=agent, env=env, transport=httpx.MockTransport(handler)) as model:
        assert isinstance(model, Model)
        model.complete("hi", temperature=0.1)
    body = json.loads(seen[0].content)
    assert body["max_tokens"] == 42 and body["temperature"] == 0.1
    assert str(seen[0].url) == "http://oc.test/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer my-secret-ref-key"


def test_cloud_failures_are_logged_with_their_cause(caplog: pytest.LogCaptureFixture) -> None:
    from dexto.llm.execution._cloud import _boto_error

    target = Target(
        "bedrock", "bedrock", "m", None, None, "env:AWS_PROFILE+us-east-1", "Amazon Bedrock"
    )
    with caplog.at_level("WARNING", logger="dexto.llm.cloud"):
        err = _boto_error(target, ConnectionError("endpoint bedrock.example unreachable"))
    assert err.code == "UPSTREAM_ERROR" and "ConnectionError" in err.message
    assert "endpoint bedrock.example unreachable" in caplog.text
