"""OpenAI chat completions: openai, groq, xai, openrouter, the Dexto gateway, glama, litellm,
ollama and any OpenAI-compatible server. Messages and tools are sent as given."""

from __future__ import annotations

import json
from typing import Any

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import body_error
from dexto.llm.execution._messages import content_text
from dexto.llm.execution._target import HttpCall, Target
from dexto.llm.execution._types import Reply, TextDelta, ToolCall
from dexto.llm.execution.adapters._base import Delta, StreamState, as_int

__all__ = ["OpenAIAdapter"]


def _usage(reply: Reply, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    reply.prompt_tokens = as_int(usage.get("prompt_tokens"))
    reply.completion_tokens = as_int(usage.get("completion_tokens"))
    cost = usage.get("cost")
    if isinstance(cost, int | float | str) and not isinstance(cost, bool):
        reply.cost_usd = str(cost)


class _Stream(StreamState):
    def feed(self, event: str, data: str) -> list[Delta]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{self._target.label} sent a stream chunk that is not JSON",
                fix="retry the request",
            ) from None
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            raise body_error(self._target, chunk)
        _usage(self._reply, chunk.get("usage"))
        out: list[Delta] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text.append(text)
                out.append(TextDelta(text))
            for tc in delta.get("tool_calls") or ():
                fn = tc.get("function") or {}
                out.append(
                    self._tools.add(
                        as_int(tc.get("index")) or 0,
                        tc.get("id"),
                        fn.get("name"),
                        fn.get("arguments") or "",
                    )
                )
            if choice.get("finish_reason"):
                self._reply.finish_reason = choice["finish_reason"]
        return out


class OpenAIAdapter:
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
            headers["authorization"] = "Bearer " + target.key()
        body: dict[str, Any] = {"model": target.model, "messages": messages, **params}
        if tools:
            body["tools"] = tools
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpCall(f"{target.base_url}/chat/completions", headers, body)

    def parse(self, target: Target, doc: Any) -> Reply:
        reply = Reply()
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise UpstreamError(
                f"{target.label} sent a reply without choices", fix="retry the request"
            )
        msg = choices[0].get("message") or {}
        reply.text = content_text(msg.get("content"))
        reply.finish_reason = choices[0].get("finish_reason")
        for i, tc in enumerate(msg.get("tool_calls") or ()):
            fn = tc.get("function") or {}
            args = fn.get("arguments")
            reply.tool_calls.append(
                ToolCall(
                    tc.get("id") or f"call_{i}",
                    fn.get("name", ""),
                    args if isinstance(args, str) else json.dumps(args),
                )
            )
        _usage(reply, doc.get("usage"))
        return reply

    def stream_parser(self, target: Target) -> _Stream:
        return _Stream(target)
