"""Building blocks of the fake upstream: model list, options/knobs, payload helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
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

MODELS: list[dict[str, Any]] = [
    {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0"},
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    },
    {
        "id": "anthropic/claude-sonnet-4.5",
        "name": "Anthropic: Claude Sonnet 4.5",
        "context_length": 1000000,
        "pricing": {"prompt": "0.000003", "completion": "0.000015", "request": "0"},
        "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000},
    },
    {
        "id": "fake/cheap",
        "name": "Fake: Cheap",
        "context_length": 8192,
        "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0"},
        "top_provider": {"context_length": 8192, "max_completion_tokens": 1000},
    },
    {
        "id": "z-ai/glm-4.5-air:free",
        "name": "Z.AI: GLM 4.5 Air (free)",
        "context_length": 131072,
        "pricing": {"prompt": "0", "completion": "0", "request": "0"},
        "top_provider": {"context_length": 131072, "max_completion_tokens": 96000},
    },
]
PRICES = {
    m["id"]: (float(m["pricing"]["prompt"]), float(m["pricing"]["completion"])) for m in MODELS
}
DEFAULT_PRICE = PRICES["fake/cheap"]
CREATED = 1_700_000_000
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


def usage_for(
    body: dict[str, Any], model: str, completion: int, opts: FakeOptions
) -> dict[str, Any]:
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
    return usage


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
