"""Reply formats of the fake direct providers: OpenAI chat completions, Anthropic Messages,
Google Gemini (generateContent) and Cohere v2 chat — whole replies and SSE streams.

Every fake answers deterministically from what it saw: ``Answer`` holds the words (or the one
tool call) to send, and each format function renders it in its provider's wire shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "sse", "stream_events", "whole"]


@dataclass(frozen=True)
class Answer:
    model: str
    words: list[str]  # text chunks (empty when the answer is a tool call)
    tool: tuple[str, str] | None  # (name, JSON arguments)
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def completion_tokens(self) -> int:
        return max(1, len(self.words))


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


def _openai_whole(a: Answer) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": a.text or None}
    if a.tool:
        msg["tool_calls"] = [
            {
                "id": "call_direct_0",
                "type": "function",
                "function": {"name": a.tool[0], "arguments": a.tool[1]},
            }
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": a.model,
        "choices": [
            {"index": 0, "message": msg, "finish_reason": "tool_calls" if a.tool else "stop"}
        ],
        "usage": {
            "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.completion_tokens,
            "total_tokens": a.prompt_tokens + a.completion_tokens,
        },
    }


def _openai_stream(a: Answer) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": a.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    out = [chunk({"role": "assistant", "content": w}) for w in a.words]
    if a.tool:
        half = len(a.tool[1]) // 2
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_direct_0",
                            "type": "function",
                            "function": {"name": a.tool[0], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in (a.tool[1][:half], a.tool[1][half:]):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if a.tool else "stop"))
    out.append(
        sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": a.model,
                "choices": [],
                "usage": _openai_whole(a)["usage"],
            }
        )
    )
    out.append(b"data: [DONE]\n\n")
    return out


def _anthropic_whole(a: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.text else []
    if a.tool:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_direct_0",
                "name": a.tool[0],
                "input": json.loads(a.tool[1]),
            }
        )
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": content,
        "stop_reason": "tool_use" if a.tool else "end_turn",
        "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
    }


def _anthropic_stream(a: Answer) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": a.model,
            "content": [],
            "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
        },
    }
    out = [sse(start, "message_start"), sse({"type": "ping"}, "ping")]
    idx = 0
    if a.words:
        out.append(
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
        )
        out += [
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w},
                },
                "content_block_delta",
            )
            for w in a.words
        ]
        out.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        idx = 1
    if a.tool:
        half = len(a.tool[1]) // 2
        out.append(
            sse(
                {
                    "type": "content_block_start",
                    "index": idx,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_direct_0",
                        "name": a.tool[0],
                        "input": {},
                    },
                },
                "content_block_start",
            )
        )
        for piece in (a.tool[1][:half], a.tool[1][half:]):
            out.append(
                sse(
                    {
                        "type": "content_block_delta",
                        "index": idx,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                    "content_block_delta",
                )
            )
        out.append(sse({"type": "content_block_stop", "index": idx}, "content_block_stop"))
    out.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if a.tool else "end_turn"},
                "usage": {"output_tokens": a.completion_tokens},
            },
            "message_delta",
        )
    )
    out.append(sse({"type": "message_stop"}, "message_stop"))
    return out


def _google_chunk(a: Answer, parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    doc: dict[str, Any] = {"candidates": [cand], "modelVersion": a.model}
    if last:
        cand["finishReason"] = "STOP"
        doc["usageMetadata"] = {
            "promptTokenCount": a.prompt_tokens,
            "candidatesTokenCount": a.completion_tokens,
            "totalTokenCount": a.prompt_tokens + a.completion_tokens,
        }
    return doc


def _google_parts(a: Answer) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": a.text}] if a.text else []
    if a.tool:
        parts.append({"functionCall": {"name": a.tool[0], "args": json.loads(a.tool[1])}})
    return parts


def _google_stream(a: Answer) -> list[bytes]:
    chunks: list[list[dict[str, Any]]] = [[{"text": w}] for w in a.words]
    if a.tool:
        chunks.append([{"functionCall": {"name": a.tool[0], "args": json.loads(a.tool[1])}}])
    return [sse(_google_chunk(a, p, i == len(chunks) - 1)) for i, p in enumerate(chunks)]


def _cohere_whole(a: Answer) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": [{"type": "text", "text": a.text}] if a.text else [],
    }
    if a.tool:
        msg["tool_calls"] = [
            {
                "id": "cohere_call_0",
                "type": "function",
                "function": {"name": a.tool[0], "arguments": a.tool[1]},
            }
        ]
    return {
        "id": "cohere-fake",
        "message": msg,
        "finish_reason": "TOOL_CALL" if a.tool else "COMPLETE",
        "usage": {
            "billed_units": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
            "tokens": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
        },
    }


def _cohere_stream(a: Answer) -> list[bytes]:
    out = [
        sse(
            {
                "type": "message-start",
                "id": "cohere-fake",
                "delta": {"message": {"role": "assistant"}},
            },
            "message-start",
        )
    ]
    out += [
        sse(
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": w}}}},
            "content-delta",
        )
        for w in a.words
    ]
    if a.tool:
        half = len(a.tool[1]) // 2
        out.append(
            sse(
                {
                    "type": "tool-call-start",
                    "index": 0,
                    "delta": {
                        "message": {
                            "tool_calls": {
                                "id": "cohere_call_0",
                                "type": "function",
                                "function": {"name": a.tool[0], "arguments": a.tool[1][:half]},
                            }
                        }
                    },
                },
                "tool-call-start",
            )
        )
        out.append(
            sse(
                {
                    "type": "tool-call-delta",
                    "index": 0,
                    "delta": {
                        "message": {"tool_calls": {"function": {"arguments": a.tool[1][half:]}}}
                    },
                },
                "tool-call-delta",
            )
        )
        out.append(sse({"type": "tool-call-end", "index": 0}, "tool-call-end"))
    usage = _cohere_whole(a)["usage"]
    out.append(
        sse(
            {
                "type": "message-end",
                "delta": {"finish_reason": "TOOL_CALL" if a.tool else "COMPLETE", "usage": usage},
            },
            "message-end",
        )
    )
    return out


def whole(kind: str, a: Answer) -> dict[str, Any]:
    if kind == "anthropic":
        return _anthropic_whole(a)
    if kind == "google":
        return _google_chunk(a, _google_parts(a), True)
    if kind == "cohere":
        return _cohere_whole(a)
    return _openai_whole(a)


def stream_events(kind: str, a: Answer) -> list[bytes]:
    if kind == "anthropic":
        return _anthropic_stream(a)
    if kind == "google":
        return _google_stream(a)
    if kind == "cohere":
        return _cohere_stream(a)
    return _openai_stream(a)
