"""Building blocks of the fake upstream: model list, options/knobs, payload helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dexto.devtools.fake_upstream_models import MODELS

__all__ = [
    "SYSTEM_FINGERPRINT",
    "chat_doc",
    "chunk_line",
    "delta_choice",
    "provider_for",
    "read_body",
    "ATTRIBUTION_HEADERS",
    "CREATED",
    "DEFAULT_PRICE",
    "MODELS",
    "PRICES",
    "DeliberateDrop",
    "FakeOptions",
    "FakeStats",
    "auth_seen",
    "err",
    "knobs",
    "obj",
    "send_json",
    "sleep_or_disconnect",
    "tool_call",
    "usage_for",
    "watch_disconnect",
]

PRICES = {
    m["id"]: (float(m["pricing"]["prompt"]), float(m["pricing"]["completion"])) for m in MODELS
}
DEFAULT_PRICE = PRICES["fake/cheap"]
CREATED = 1_700_000_000
SYSTEM_FINGERPRINT = "fp_fake0000"
_PROVIDERS = {"openai": "OpenAI", "anthropic": "Anthropic", "z-ai": "Z.AI"}
# OpenRouter's app-attribution request headers; the fake records them in ``stats.last_seen``.
ATTRIBUTION_HEADERS = (
    b"http-referer",
    b"x-title",
    b"x-openrouter-title",
    b"x-openrouter-categories",
)


class DeliberateDrop(Exception):
    """Raised to make the server cut the connection (the ``drop_after`` knob)."""


@dataclass(frozen=True)
class FakeOptions:
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    chunks: int = 20
    status: int = 0
    drop_after: int = -1
    malformed: bool = False
    hang_ms: float = 0.0
    no_usage: bool = False
    no_cost: bool = False
    cost: float = -1.0
    stream_error_after: int = -1

    def merged(self, overrides: dict[str, Any]) -> FakeOptions:
        changes: dict[str, Any] = {}
        for f in fields(self):
            if f.name in overrides and overrides[f.name] is not None:
                raw = overrides[f.name]
                kind = type(getattr(self, f.name))
                if kind is bool:
                    changes[f.name] = str(raw).lower() in ("1", "true", "yes", "on")
                else:
                    changes[f.name] = kind(raw)
        return replace(self, **changes) if changes else self


@dataclass
class FakeStats:
    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    last_seen: dict[str, str] = field(default_factory=dict)  # the echo headers, last request


def knobs(headers: dict[bytes, bytes], body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith(b"x-fake-"):
            key = name[7:].decode().replace("-", "_")
            out["status" if key == "error" else key] = value.decode()
    fake = body.get("fake")
    if isinstance(fake, dict):
        for key, value in fake.items():
            out["status" if key == "error" else key] = value
    return out


def auth_seen(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else auth.strip()
    if not token:
        return "none"
    return f"sha256:{hashlib.sha256(token.encode()).hexdigest()[:12]};last4:{token[-4:]}"


def tool_call(body: dict[str, Any]) -> tuple[str, str] | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return None
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if (
        isinstance(last, dict)
        and last.get("role") == "tool"
        and body.get("tool_choice")
        in (
            None,
            "auto",
        )
    ):
        return None  # a tool result was given: answer with text, so agent loops end
    chosen = tools[0]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        want = (choice.get("function") or {}).get("name")
        chosen = next((t for t in tools if (t.get("function") or {}).get("name") == want), chosen)
    fn: dict[str, Any] = obj(chosen.get("function") if isinstance(chosen, dict) else None)
    params = obj(fn.get("parameters"))
    props = obj(params.get("properties"))
    req = params.get("required")
    required: list[Any] = req if isinstance(req, list) else list(props)
    samples = {
        "string": "fake",
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
    }
    args = {k: samples.get(str(obj(props.get(k)).get("type")), "fake") for k in required}
    return str(fn.get("name", "tool")), json.dumps(args, separators=(",", ":"))


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def provider_for(model: str) -> str:
    """The ``provider`` OpenRouter names in answers (the fake's stand-in for the routed one)."""
    return _PROVIDERS.get(model.split("/", 1)[0], "Fake")


def usage_for(
    body: dict[str, Any], model: str, completion: int, opts: FakeOptions
) -> dict[str, Any]:
    """OpenRouter's usage object (usage accounting): tokens, ``cost`` and its breakdown."""
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    p_in, p_out = PRICES.get(model, DEFAULT_PRICE)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if not opts.no_cost:
        usage["cost"] = (
            opts.cost if opts.cost >= 0 else round(prompt * p_in + completion * p_out, 12)
        )
        usage["is_byok"] = False
    usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
    if not opts.no_cost:
        usage["cost_details"] = {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": round(prompt * p_in, 12),
            "upstream_inference_completions_cost": round(completion * p_out, 12),
        }
    usage["completion_tokens_details"] = {"reasoning_tokens": 0, "image_tokens": 0}
    return usage


def chat_doc(
    gen_id: str, model: str, message: dict[str, Any], finish: str, usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A non-streaming chat completion, field for field as OpenRouter answers it."""
    doc: dict[str, Any] = {
        "id": gen_id,
        "provider": provider_for(model),
        "model": model,
        "object": "chat.completion",
        "created": CREATED,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": finish,
                "native_finish_reason": finish,
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "reasoning": None, **message},
            }
        ],
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if usage is not None:
        doc["usage"] = usage
    return doc


def chunk_line(gen_id: str, model: str, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    """One ``data:`` event of a chat-completion stream."""
    doc = {
        "id": gen_id,
        "provider": provider_for(model),
        "model": model,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "choices": choices,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        **extra,
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def delta_choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "index": 0,
        "delta": delta,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "logprobs": None,
    }


async def watch_disconnect(receive: Any, event: asyncio.Event) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            event.set()
            return


async def sleep_or_disconnect(receive: Any, seconds: float) -> bool:
    event = asyncio.Event()
    watcher = asyncio.ensure_future(watch_disconnect(receive, event))
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except TimeoutError:
        return False
    finally:
        watcher.cancel()


async def read_body(receive: Any) -> bytes:
    """The whole ASGI request body."""
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


def err(status: int, message: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": message}}).encode()


async def send_json(
    send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
