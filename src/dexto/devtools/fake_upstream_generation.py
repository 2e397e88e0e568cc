"""``GET /api/v1/generation?id=…`` for the fake upstream: OpenRouter's generation lookup.

Every chat answer the fake sends is recorded by :meth:`GenerationStore.track` (a wrapper around
the ASGI ``send``): tokens delivered so far, whether it was streamed, cancelled (the client went
away) or finished. The lookup answers OpenRouter's documented shape, ``{"data": {"id",
"total_cost", "tokens_prompt", "tokens_completion", "native_tokens_…", "streamed",
"cancelled", "finish_reason", …}}``, with ``total_cost`` priced as the usage chunk would be; an
unknown id is ``404 {"error": {"code": 404, "message": "Generation not found"}}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from dexto.devtools.fake_upstream_parts import FakeOptions, err, send_json, usage_for

__all__ = ["GenerationStore", "serve_generation"]


@dataclass
class _Generation:
    id: str
    model: str
    body: dict[str, Any]
    opts: FakeOptions
    streamed: bool
    created: float
    completion: int = 0
    usage: dict[str, Any] | None = None
    finished: bool = False
    cancelled: bool = False
    finish_reason: str | None = None


class GenerationStore:
    def __init__(self) -> None:
        self.items: dict[str, _Generation] = {}

    def track(
        self, send: Any, gen_id: str, model: str, body: dict[str, Any], opts: FakeOptions
    ) -> Any:
        """Wrap ``send`` so that what is sent for this generation is recorded."""
        gen = _Generation(gen_id, model, body, opts, bool(body.get("stream")), time.time())
        self.items[gen_id] = gen

        async def tracking_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] != "http.response.body":
                return
            data = message.get("body", b"")
            if gen.streamed:
                gen.completion += data.count(b'"finish_reason": null')
                if b'"finish_reason": "' in data:
                    gen.finish_reason = "tool_calls" if b'"tool_calls"' in data else "stop"
            elif data[:1] == b"{":
                try:
                    doc = json.loads(data)
                except ValueError:
                    doc = None
                if isinstance(doc, dict) and isinstance(doc.get("usage"), dict):
                    gen.usage = doc["usage"]
                    gen.finish_reason = "stop"
            if not message.get("more_body", False):
                gen.finished = True

        return tracking_send

    def document(self, gen: _Generation) -> dict[str, Any]:
        usage = gen.usage or usage_for(gen.body, gen.model, gen.completion, gen.opts)
        prompt = int(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0))
        cost = usage.get("cost", 0)
        cancelled = gen.cancelled or not gen.finished
        return {
            "data": {
                "id": gen.id,
                "upstream_id": "chatcmpl-" + gen.id.removeprefix("gen-"),
                "total_cost": cost,
                "cache_discount": None,
                "upstream_inference_cost": None,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(gen.created)),
                "model": gen.model,
                "app_id": None,
                "streamed": gen.streamed,
                "cancelled": cancelled,
                "provider_name": "Fake",
                "latency": 1,
                "moderation_latency": None,
                "generation_time": max(1, int((time.time() - gen.created) * 1000)),
                "finish_reason": None if cancelled else gen.finish_reason,
                "native_finish_reason": None if cancelled else gen.finish_reason,
                "tokens_prompt": prompt,
                "tokens_completion": completion,
                "native_tokens_prompt": prompt,
                "native_tokens_completion": completion,
                "native_tokens_completion_images": 0,
                "native_tokens_reasoning": 0,
                "native_tokens_cached": 0,
                "num_media_prompt": None,
                "num_input_audio_prompt": None,
                "num_media_completion": 0,
                "num_search_results": None,
                "origin": "",
                "usage": cost,
                "is_byok": False,
                "external_user": None,
                "api_type": "completions",
                "router": None,
            }
        }


async def serve_generation(store: GenerationStore, scope: Any, send: Any) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    gen_id = (query.get("id") or [""])[0]
    gen = store.items.get(gen_id)
    if gen is None:
        await send_json(send, 404, err(404, "Generation not found"))
        return
    await send_json(send, 200, json.dumps(store.document(gen)).encode())
