"""OpenAI chat parameters → the Anthropic, Gemini, Cohere and Bedrock Converse requests: each
adapter maps what the provider has a field for and leaves out the rest with one warning naming them
(the provider APIs answer 400 to unknown fields — boto3 refuses them before sending — which would
break the 402 fallback exactly when it is needed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from dexto._secret import Secret
from dexto.demo.stack import LocalStack
from dexto.llm.execution import Done, Model
from dexto.llm.execution._target import Target
from dexto.llm.execution.adapters import adapter_for

from .conftest import Fake, direct_env

Open = Callable[..., Model]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
# the OpenAI-only parameters of a typical call (what the gateway accepts as they are)
OPENAI_ONLY = {
    "seed": 7,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
    "response_format": {"type": "json_object"},
    "parallel_tool_calls": False,
    "user": "user-42",
    "logit_bias": {"50256": -100},
    "n": 2,
    "logprobs": True,
    "max_tokens": 50,
    "max_completion_tokens": 60,
}
ANTHROPIC_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
}
GEMINI_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
}
GEMINI_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
}
ANTHROPIC_DROPPED = {
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "logit_bias",
    "n",
    "logprobs",
}
GEMINI_DROPPED = {"parallel_tool_calls", "user", "logit_bias", "n", "logprobs"}
COHERE_FIELDS = set(  # v2 chat request fields (docs.cohere.com/reference/chat)
    "model messages tools strict_tools documents citation_options response_format safety_mode"
    " max_tokens stop_sequences temperature seed frequency_penalty presence_penalty k p logprobs"
    " tool_choice thinking stream".split()
)
COHERE_DROPPED = {"parallel_tool_calls", "user", "logit_bias", "n"}
CONVERSE_FIELDS = set(  # Converse / ConverseStream request fields (boto3's bedrock-runtime model)
    "modelId messages system inferenceConfig toolConfig guardrailConfig"
    " additionalModelRequestFields promptVariables additionalModelResponseFieldPaths"
    " requestMetadata performanceConfig serviceTier outputConfig".split()
)
CONVERSE_CONFIG = {"maxTokens", "temperature", "topP", "stopSequences"}
BEDROCK_DROPPED = ANTHROPIC_DROPPED | {"parallel_tool_calls", "user"}
FORCE_LOOKUP = {"type": "function", "function": {"name": "lookup"}}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}
SAMPLING = {
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 5,
    "seed": 7,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
}
COHERE_NATIVE = {
    "safety_mode": "STRICT",
    "documents": ["doc"],
    "citation_options": {"mode": "FAST"},
    "strict_tools": True,
    "thinking": {"type": "disabled"},
}

# (case, params, with tools, expected body fields, dropped parameter names)
Case = tuple[str, dict[str, Any], bool, dict[str, Any], set[str]]
ANTHROPIC_CASES: list[Case] = [
    ("default max_tokens", {}, False, {"max_tokens": 4096}, set()),
    ("max_tokens", {"max_tokens": 50}, False, {"max_tokens": 50}, set()),
    ("max_completion_tokens", {"max_completion_tokens": 60}, False, {"max_tokens": 60}, set()),
    (
        "both token limits: one max_tokens",
        {"max_tokens": 50, "max_completion_tokens": 60},
        False,
        {"max_tokens": 60},
        set(),
    ),
    ("stop string", {"stop": "END"}, False, {"stop_sequences": ["END"]}, set()),
    ("stop list", {"stop": ["a", "b"]}, False, {"stop_sequences": ["a", "b"]}, set()),
    (
        "sampling as is",
        {"temperature": 0.2, "top_p": 0.9, "top_k": 5},
        False,
        {"temperature": 0.2, "top_p": 0.9, "top_k": 5},
        set(),
    ),
    ("user", {"user": "user-42"}, False, {"metadata": {"user_id": "user-42"}}, set()),
    (
        "no parallel tool calls",
        {"parallel_tool_calls": False},
        True,
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        set(),
    ),
    (
        "no parallel tool calls, forced tool",
        {"parallel_tool_calls": False, "tool_choice": FORCE_LOOKUP},
        True,
        {"tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True}},
        set(),
    ),
    (
        "no parallel tool calls, required",
        {"parallel_tool_calls": False, "tool_choice": "required"},
        True,
        {"tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        set(),
    ),
    ("parallel tool calls allowed", {"parallel_tool_calls": True}, True, {}, set()),
    ("one choice", {"n": 1}, False, {}, set()),
    ("unset values", {"temperature": None, "seed": None}, False, {}, set()),
    (
        "OpenAI-only parameters",
        OPENAI_ONLY,
        True,
        {
            "max_tokens": 60,
            "metadata": {"user_id": "user-42"},
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        ANTHROPIC_DROPPED,
    ),
]
GEMINI_CASES: list[Case] = [
    (
        "both token limits: one maxOutputTokens",
        {"max_tokens": 50, "max_completion_tokens": 60},
        False,
        {"generationConfig": {"maxOutputTokens": 60}},
        set(),
    ),
    (
        "generationConfig fields",
        {**SAMPLING, "stop": "END"},
        False,
        {
            "generationConfig": {
                "temperature": 0.2,
                "topP": 0.9,
                "topK": 5,
                "seed": 7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
                "stopSequences": ["END"],
            }
        },
        set(),
    ),
    (
        "json object",
        {"response_format": {"type": "json_object"}},
        False,
        {"generationConfig": {"responseMimeType": "application/json"}},
        set(),
    ),
    (
        "json schema",
        {"response_format": JSON_SCHEMA},
        False,
        {
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        },
        set(),
    ),
    ("text format", {"response_format": {"type": "text"}}, False, {}, set()),
    (
        "forced function",
        {"tool_choice": FORCE_LOOKUP},
        True,
        {
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
            }
        },
        set(),
    ),
    (
        "required",
        {"tool_choice": "required"},
        True,
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
        set(),
    ),
    (
        "none",
        {"tool_choice": "none"},
        True,
        {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}},
        set(),
    ),
    (
        "unknown tool_choice shape",
        {"tool_choice": {"type": "allowed_tools"}},
        True,
        {},
        {"tool_choice"},
    ),
    ("parallel tool calls allowed", {"parallel_tool_calls": True}, True, {}, set()),
    (
        "native safetySettings as they are",
        {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        False,
        {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        set(),
    ),
    (
        "OpenAI-only parameters",
        OPENAI_ONLY,
        True,
        {
            "generationConfig": {
                "maxOutputTokens": 60,
                "seed": 7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.2,
                "responseMimeType": "application/json",
            }
        },
        GEMINI_DROPPED,
    ),
]

COHERE_CASES: list[Case] = [
    ("max_tokens", {"max_tokens": 50}, False, {"max_tokens": 50}, set()),
    ("max_completion_tokens", {"max_completion_tokens": 60}, False, {"max_tokens": 60}, set()),
    (
        "both token limits: one max_tokens",
        {"max_tokens": 50, "max_completion_tokens": 60},
        False,
        {"max_tokens": 60},
        set(),
    ),
    (
        "sampling and penalties",
        {**SAMPLING, "logprobs": True},
        False,
        {
            "temperature": 0.2,
            "p": 0.9,
            "k": 5,
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "logprobs": True,
        },
        set(),
    ),
    ("stop string", {"stop": "END"}, False, {"stop_sequences": ["END"]}, set()),
    ("stop list", {"stop": ["a", "b"]}, False, {"stop_sequences": ["a", "b"]}, set()),
    (
        "json object",
        {"response_format": {"type": "json_object"}},
        False,
        {"response_format": {"type": "json_object"}},
        set(),
    ),
    (
        "json schema",
        {"response_format": JSON_SCHEMA},
        False,
        {"response_format": {"type": "json_object", "json_schema": SCHEMA}},
        set(),
    ),
    ("text format", {"response_format": {"type": "text"}}, False, {}, set()),
    ("unknown format", {"response_format": {"type": "xml"}}, False, {}, {"response_format"}),
    ("required", {"tool_choice": "required"}, True, {"tool_choice": "REQUIRED"}, set()),
    ("none", {"tool_choice": "none"}, True, {"tool_choice": "NONE"}, set()),
    ("auto", {"tool_choice": "auto"}, True, {}, set()),
    ("none without tools", {"tool_choice": "none"}, False, {}, set()),
    ("required without tools", {"tool_choice": "required"}, False, {}, {"tool_choice"}),
    ("forced function", {"tool_choice": FORCE_LOOKUP}, True, {}, {"tool_choice"}),
    ("no parallel tool calls", {"parallel_tool_calls": False}, True, {}, {"parallel_tool_calls"}),
    ("parallel tool calls allowed", {"parallel_tool_calls": True}, True, {}, set()),
    ("one choice", {"n": 1}, False, {}, set()),
    (
        "no field",
        {"user": "u", "metadata": {"a": "b"}, "top_logprobs": 2, "service_tier": "flex"},
        False,
        {},
        {"user", "metadata", "top_logprobs", "service_tier"},
    ),
    (
        "native v2 fields as they are",
        COHERE_NATIVE,
        True,
        COHERE_NATIVE,
        set(),
    ),
    ("unset values", {"temperature": None, "seed": None}, False, {}, set()),
    (
        "OpenAI-only parameters",
        OPENAI_ONLY,
        True,
        {
            "max_tokens": 60,
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "response_format": {"type": "json_object"},
            "logprobs": True,
        },
        COHERE_DROPPED,
    ),
]
# "toolChoice" stands for toolConfig.toolChoice
BEDROCK_CASES: list[Case] = [
    ("max_tokens", {"max_tokens": 50}, False, {"inferenceConfig": {"maxTokens": 50}}, set()),
    (
        "both token limits: one maxTokens",
        {"max_tokens": 50, "max_completion_tokens": 60},
        False,
        {"inferenceConfig": {"maxTokens": 60}},
        set(),
    ),
    (
        "inferenceConfig fields",
        {"temperature": 0.2, "top_p": 0.9, "stop": "END"},
        False,
        {"inferenceConfig": {"temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}},
        set(),
    ),
    (
        "stop list",
        {"stop": ["a", "b"]},
        False,
        {"inferenceConfig": {"stopSequences": ["a", "b"]}},
        set(),
    ),
    ("required", {"tool_choice": "required"}, True, {"toolChoice": {"any": {}}}, set()),
    (
        "forced function",
        {"tool_choice": FORCE_LOOKUP},
        True,
        {"toolChoice": {"tool": {"name": "lookup"}}},
        set(),
    ),
    ("auto", {"tool_choice": "auto"}, True, {}, set()),
    ("none", {"tool_choice": "none"}, True, {}, {"tool_choice"}),
    ("none without tools", {"tool_choice": "none"}, False, {}, set()),
    ("required without tools", {"tool_choice": "required"}, False, {}, {"tool_choice"}),
    (
        "json schema",
        {"response_format": JSON_SCHEMA},
        False,
        {
            "outputConfig": {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"schema": json.dumps(SCHEMA), "name": "c"}},
                }
            }
        },
        set(),
    ),
    ("json object", {"response_format": {"type": "json_object"}}, False, {}, {"response_format"}),
    ("text format", {"response_format": {"type": "text"}}, False, {}, set()),
    ("metadata", {"metadata": {"team": "a"}}, False, {"requestMetadata": {"team": "a"}}, set()),
    ("metadata not strings", {"metadata": {"n": 1}}, False, {}, {"metadata"}),
    ("metadata empty", {"metadata": {}}, False, {}, {"metadata"}),
    ("service tier", {"service_tier": "flex"}, False, {"serviceTier": {"type": "flex"}}, set()),
    ("service tier auto", {"service_tier": "auto"}, False, {}, {"service_tier"}),
    ("top_k", {"top_k": 5}, False, {}, {"top_k"}),
    ("parallel tool calls allowed", {"parallel_tool_calls": True}, True, {}, set()),
    ("one choice", {"n": 1}, False, {}, set()),
    ("unset values", {"temperature": None, "seed": None}, False, {}, set()),
    (
        "OpenAI-only parameters",
        OPENAI_ONLY,
        True,
        {"inferenceConfig": {"maxTokens": 60}},
        BEDROCK_DROPPED,
    ),
]


def _target(wire: str) -> Target:
    return Target(wire, wire, "m-1", "http://p.test/v1", Secret("k-secret"), "env:K", LABELS[wire])


def _build(wire: str, params: dict[str, Any], with_tools: bool, stream: bool) -> Any:
    """The provider request the ``wire`` adapter builds for one user message."""
    return adapter_for(wire).build(
        _target(wire),
        [{"role": "user", "content": "hi"}],
        TOOLS if with_tools else None,
        dict(params),
        stream,
    )


def _check_warnings(warnings: tuple[str, ...], dropped: set[str], label: str) -> None:
    if not dropped:
        assert warnings == ()
        return
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{label} has no equivalent for ")
    named = warnings[0].removeprefix(f"{label} has no equivalent for ").split(";")[0]
    assert set(named.split(", ")) == dropped


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("case", "params", "with_tools", "expected", "dropped"), ANTHROPIC_CASES)
def test_anthropic_body(
    case: str,
    params: dict[str, Any],
    with_tools: bool,
    expected: dict[str, Any],
    dropped: set[str],
    stream: bool,
) -> None:
    call = _build("anthropic", params, with_tools, stream)
    body = call.body
    assert set(body) <= ANTHROPIC_FIELDS, case
    assert {k: body[k] for k in expected} == expected, case
    optional = {"metadata", "tool_choice", "stop_sequences", "temperature", "top_p", "top_k"}
    assert set(body) & optional <= set(expected), case
    _check_warnings(call.warnings, dropped, "Anthropic")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("case", "params", "with_tools", "expected", "dropped"), GEMINI_CASES)
def test_gemini_body(
    case: str,
    params: dict[str, Any],
    with_tools: bool,
    expected: dict[str, Any],
    dropped: set[str],
    stream: bool,
) -> None:
    call = _build("google", params, with_tools, stream)
    body = call.body
    assert set(body) <= GEMINI_FIELDS, case
    assert set(body.get("generationConfig", {})) <= GEMINI_CONFIG, case
    assert {k: body[k] for k in expected} == expected, case
    optional = {"generationConfig", "toolConfig", "safetySettings"}
    assert set(body) & optional <= set(expected), case
    _check_warnings(call.warnings, dropped, "Google")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("case", "params", "with_tools", "expected", "dropped"), COHERE_CASES)
def test_cohere_body(
    case: str,
    params: dict[str, Any],
    with_tools: bool,
    expected: dict[str, Any],
    dropped: set[str],
    stream: bool,
) -> None:
    call = _build("cohere", params, with_tools, stream)
    body = call.body
    assert set(body) <= COHERE_FIELDS, case
    assert body["stream"] is stream and (body.get("tools") == (TOOLS if with_tools else None))
    assert {k: body[k] for k in expected} == expected, case
    assert set(body) - {"model", "messages", "stream", "tools"} <= set(expected), case
    _check_warnings(call.warnings, dropped, "Cohere")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("case", "params", "with_tools", "expected", "dropped"), BEDROCK_CASES)
def test_bedrock_converse_arguments(
    case: str,
    params: dict[str, Any],
    with_tools: bool,
    expected: dict[str, Any],
    dropped: set[str],
    stream: bool,
) -> None:
    call = _build("bedrock", params, with_tools, stream)
    assert call.url == ("bedrock:converse_stream" if stream else "bedrock:converse")
    kwargs = dict(call.body)
    assert set(kwargs) <= CONVERSE_FIELDS, case
    assert set(kwargs.get("inferenceConfig", {})) <= CONVERSE_CONFIG, case
    tool_config = kwargs.pop("toolConfig", {})
    assert set(tool_config) <= {"tools", "toolChoice"} and bool(tool_config) is with_tools
    sent = {k: v for k, v in kwargs.items() if k not in ("modelId", "messages")}
    sent.update({"toolChoice": tool_config["toolChoice"]} if "toolChoice" in tool_config else {})
    assert sent == expected, case
    _check_warnings(call.warnings, dropped, "Amazon Bedrock")


SELECTIONS = {
    "anthropic": "anthropic/claude-sonnet-4-5-20250929",
    "google": "google/gemini-2.0-flash",
    "cohere": "cohere/command-a-03-2025",
    "bedrock": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
}
LABELS = {
    "anthropic": "Anthropic",
    "google": "Google",
    "cohere": "Cohere",
    "bedrock": "Amazon Bedrock",
}
# left out when the call also forces the ``lookup`` tool
E2E_DROPPED = {
    "anthropic": ANTHROPIC_DROPPED,
    "google": GEMINI_DROPPED,
    "cohere": COHERE_DROPPED | {"tool_choice"},
    "bedrock": BEDROCK_DROPPED,
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", sorted(SELECTIONS))
def test_openai_only_parameters_reach_a_real_provider_server(
    kind: str, stream: bool, fakes: dict[str, Fake], opened: Open
) -> None:
    """The fakes answer 400 to unknown fields, as the real APIs do (boto3 refuses them before
    sending, and the fake Bedrock records the ``toolChoice`` it received)."""
    if kind == "bedrock":
        pytest.importorskip("boto3")  # the optional dexto[bedrock] extra
    model = opened(SELECTIONS[kind], env=direct_env(fakes, kind))
    params: dict[str, Any] = {**OPENAI_ONLY, "tool_choice": FORCE_LOOKUP}
    if stream:
        events = list(model.stream("hello", tools=TOOLS, **params))
        assert isinstance(events[-1], Done)
        result = events[-1].result
    else:
        result = model.complete("hello", tools=TOOLS, **params)
    assert [c.name for c in result.tool_calls] == ["lookup"]
    warnings = tuple(w for w in result.warnings if w.startswith(LABELS[kind]))
    _check_warnings(warnings, E2E_DROPPED[kind], LABELS[kind])
    assert fakes[kind].requests[-1]["tools"] is True
    if kind == "bedrock":
        assert fakes[kind].requests[-1]["tool_choice"] == {"tool": {"name": "lookup"}}


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_the_402_fallback_to_anthropic_leaves_out_openai_only_parameters(
    stack: LocalStack, opened: Open, stream: bool
) -> None:
    acct = stack.create_account(f"params-broke-{stream}@example.com", "0")
    env = dict(
        os.environ,
        DEXTO_GATEWAY_URL=stack.gateway_url,
        ANTHROPIC_BASE_URL=stack.direct_url("anthropic"),
        DEXTO_API_KEY=acct.api_key,
        ANTHROPIC_API_KEY="sk-ant-user-own-key-f4k3",
    )
    model = opened(SELECTIONS["anthropic"], env=env)
    if stream:
        events = list(model.stream("hello", **OPENAI_ONLY))
        assert isinstance(events[-1], Done)
        result = events[-1].result
    else:
        result = model.complete("hello", **OPENAI_ONLY)
    assert result.route.fell_back and "you said 'hello'" in result.text
    warnings = tuple(w for w in result.warnings if w.startswith("Anthropic"))
    _check_warnings(warnings, ANTHROPIC_DROPPED, "Anthropic")
