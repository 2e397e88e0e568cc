"""Google's native Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``).

Chosen over Google's OpenAI-compatible endpoint because the provider's base URL
(``https://generativelanguage.googleapis.com/v1beta``, overridable by ``GOOGLE_BASE_URL``) is the
native API root, the native API is the stable, documented one (usage metadata, system
instructions, function calling), and Vertex AI serves the very same request shape — so one adapter
serves both. The key travels in the ``x-goog-api-key`` header, never in the URL.
"""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import body_error
from dexto.llm.execution._messages import content_text, parse_arguments, tool_names
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int, dropped_warning

__all__ = ["GoogleAdapter", "to_gemini"]

_STOP = {"STOP": "stop", "MAX_TOKENS": "length"}
_CONFIG = {  # OpenAI parameter → generationConfig field
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_NATIVE = ("safetySettings", "cachedContent")  # Gemini request fields sent as they are
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_UNSUPPORTED_SCHEMA = {"$schema", "additionalProperties", "$id", "$defs", "definitions"}


def _schema(node: Any) -> Any:
    """JSON schema → the OpenAPI subset Gemini accepts (drops keys it rejects)."""
    if isinstance(node, dict):
        return {k: _schema(v) for k, v in node.items() if k not in _UNSUPPORTED_SCHEMA}
    if isinstance(node, list):
        return [_schema(v) for v in node]
    return node


def _parts(m: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    if m["role"] == "tool":
        call_id = m.get("tool_call_id", "")
        text = content_text(m.get("content"))
        try:
            result = json.loads(text)
        except ValueError:
            result = text
        return [
            {
                "functionResponse": {
                    "name": names.get(call_id, call_id),
                    "response": result if isinstance(result, dict) else {"result": result},
                }
            }
        ]
    parts: list[dict[str, Any]] = []
    text = content_text(m.get("content"))
    if text:
        parts.append({"text": text})
    for call in m.get("tool_calls") or ():
        fn = call.get("function") or {}
        parts.append(
            {
                "functionCall": {
                    "name": fn.get("name", ""),
                    "args": parse_arguments(fn.get("arguments")),
                }
            }
        )
    return parts


def to_gemini(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system instruction text, Gemini ``contents``)."""
    names = tool_names(messages)
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] in ("system", "developer"):
            system.append(content_text(m.get("content")))
            continue
        role = "model" if m["role"] == "assistant" else "user"
        parts = _parts(m, names)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(system), contents


def _tool_config(choice: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` → Gemini ``toolConfig`` (None for a shape it cannot express)."""
    if isinstance(choice, str) and choice in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[choice]}}
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [fn["name"]]}}
    return None


def _response_format(value: Any, config: dict[str, Any]) -> bool:
    """OpenAI ``response_format`` → ``responseMimeType``/``responseSchema``; False if unknown."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return True
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return True
    spec = value.get("json_schema") if kind == "json_schema" else None
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = _schema(spec["schema"])
        return True
    return False


def _params(
    params: dict[str, Any], tools: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], list[str]]:
    """OpenAI chat parameters → Gemini request fields, and the names that have no field."""
    given = {k: v for k, v in params.items() if v is not None}
    if "max_completion_tokens" in given:  # one maxOutputTokens: the newer OpenAI name wins
        given.pop("max_tokens", None)
    native = given.pop("generationConfig", None)
    config: dict[str, Any] = dict(native) if isinstance(native, dict) else {}
    out: dict[str, Any] = {}
    dropped = [] if native is None or isinstance(native, dict) else ["generationConfig"]
    for name, value in given.items():
        if name in _CONFIG:
            config[_CONFIG[name]] = [value] if name == "stop" and isinstance(value, str) else value
        elif name == "tool_choice" and _tool_config(value) is not None:
            out["toolConfig"] = _tool_config(value)
        elif name == "response_format" and _response_format(value, config):
            continue
        elif name in _NATIVE:
            out[name] = value
        elif not (name == "n" and value == 1) and not (
            name == "parallel_tool_calls" and (value is True or not tools)
        ):
            dropped.append(name)
    if config:
        out["generationConfig"] = config
    return out, dropped


def _body(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, params: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """(Gemini request body, names of the parameters left out)."""
    system, contents = to_gemini(messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    fields, dropped = _params(params, tools)
    body.update(fields)
    if tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description", ""),
                        **(
                            {"parameters": _schema(t["function"]["parameters"])}
                            if t["function"].get("parameters")
                            else {}
                        ),
                    }
                    for t in tools
                ]
            }
        ]
    return body, dropped


def _chunk(reply: Reply, doc: Any, target: Target) -> list[tuple[str | None, dict[str, Any]]]:
    """Apply one response (or stream chunk) to ``reply``; return its (text, functionCall) parts."""
    if not isinstance(doc, dict):
        raise UpstreamError(
            f"{target.label} sent a reply that is not an object", fix="retry the request"
        )
    if "error" in doc:
        raise body_error(target, doc)
    usage = doc.get("usageMetadata") or {}
    if usage:
        reply.prompt_tokens = as_int(usage.get("promptTokenCount"))
        reply.completion_tokens = as_int(usage.get("candidatesTokenCount"))
    out: list[tuple[str | None, dict[str, Any]]] = []
    for cand in (doc.get("candidates") or ())[:1]:
        if cand.get("finishReason"):
            reply.finish_reason = _STOP.get(cand["finishReason"], cand["finishReason"].lower())
        for part in (cand.get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            if isinstance(part.get("text"), str):
                out.append((part["text"], {}))
            elif isinstance(part.get("functionCall"), dict):
                out.append((None, part["functionCall"]))
    return out


class _Stream(StreamState):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._n = 0

    def feed(self, event: str, data: str) -> list[Delta]:
        try:
            doc = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{self._target.label} sent a stream chunk that is not JSON",
                fix="retry the request",
            ) from None
        out: list[Delta] = []
        for text, call in _chunk(self._reply, doc, self._target):
            if text is not None:
                if text:
                    self._text.append(text)
                    out.append(TextDelta(text))
                continue
            out.append(
                self._tools.add(
                    self._n,
                    call.get("id") or f"call_{self._n}",
                    call.get("name", ""),
                    json.dumps(call.get("args") or {}),
                )
            )
            self._n += 1
        return out

    def reply(self) -> Reply:
        super().reply()
        if self._reply.tool_calls and self._reply.finish_reason == "stop":
            self._reply.finish_reason = "tool_calls"
        return self._reply


class GoogleAdapter:
    """Serves ``google`` (API key header) and ``vertex`` (OAuth bearer token from ADC)."""

    def build(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        stream: bool,
    ) -> HttpCall:
        headers = {"content-type": "application/json", **target.headers}
        if target.secret is not None:
            if target.wire == "vertex":
                headers["authorization"] = "Bearer " + target.key()
            else:
                headers["x-goog-api-key"] = target.key()
        model = target.model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body, dropped = _body(messages, tools, params)
        return HttpCall(
            f"{target.base_url}/models/{model}:{method}",
            headers,
            body,
            dropped_warning(target, dropped),
        )

    def parse(self, target: Target, doc: Any) -> Reply:
        reply = Reply()
        texts = []
        for text, call in _chunk(reply, doc, target):
            if text is not None:
                texts.append(text)
            else:
                n = len(reply.tool_calls)
                reply.tool_calls.append(
                    ToolCall(
                        call.get("id") or f"call_{n}",
                        call.get("name", ""),
                        json.dumps(call.get("args") or {}),
                    )
                )
        reply.text = "".join(texts)
        if reply.tool_calls and reply.finish_reason == "stop":
            reply.finish_reason = "tool_calls"
        return reply

    def stream_parser(self, target: Target) -> _Stream:
        return _Stream(target)
