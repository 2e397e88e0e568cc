"""The §7 fallback rules, exactly, with an in-memory transport (no processes): one retry, direct,
native ID, own key, only before anything was delivered; no other error switches routes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dexto.errors import AuthFailedError, InsufficientCreditsError, UpstreamError
from dexto.llm.execution import Done, TextDelta, open_model
from dexto.llm.execution._model import Model

SEL = "anthropic/claude-sonnet-4-5-20250929"
DXK = "dxk_unit_secret_key_abcdef"
OWN = "sk-ant-unit-own-key-9z9z"
Handler = Callable[[httpx.Request], httpx.Response]

_402 = {
    "error": {
        "code": "INSUFFICIENT_CREDITS",
        "type": "insufficient_credits",
        "message": "Insufficient Dexto credits. Balance: $0.00. Top up.",
    }
}


def _sse(*docs: object) -> bytes:
    return b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)


def _chunk(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


ANTHROPIC_OK = {
    "content": [{"type": "text", "text": "direct answer"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 2},
}


class Recorder:
    def __init__(self, gateway: Handler) -> None:
        self.gateway = gateway
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host == "gw.test":
            return self.gateway(request)
        if request.url.host == "anthropic.test":
            if json.loads(request.content).get("stream"):
                return httpx.Response(
                    200, headers={"content-type": "text/event-stream"}, content=_anthropic_stream()
                )
            return httpx.Response(200, json=ANTHROPIC_OK)
        return httpx.Response(404)

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.seen]


def _anthropic_stream() -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "direct answer"}}\n\n'
    )


def _model(rec: Recorder, *, own_key: bool = True, **kw: object) -> Model:
    env = dict(
        os.environ,
        DEXTO_API_KEY=DXK,
        DEXTO_GATEWAY_URL="http://gw.test/v1/",
        ANTHROPIC_BASE_URL="http://anthropic.test/v1",
    )
    if own_key:
        env["ANTHROPIC_API_KEY"] = OWN
    return open_model(SEL, env=env, transport=httpx.MockTransport(rec), **kw)  # type: ignore[arg-type]


def test_gateway_request_shape_and_headers() -> None:
    def gw(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"choices": [{"message": {"content": "ok"}}]},
            headers={"x-dexto-credits-remaining": "3.250000", "x-dexto-cost": "0.000100"},
        )

    rec = Recorder(gw)
    with _model(rec, session_id="s-1", source="unit") as model:
        result = model.complete("hi")
    req = rec.seen[0]
    assert str(req.url) == "http://gw.test/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {DXK}"
    assert req.headers["x-dexto-session-id"] == "s-1"
    assert req.headers["x-dexto-source"] == "unit"
    assert req.headers["x-dexto-version"]
    assert json.loads(req.content)["model"] == "anthropic/claude-sonnet-4.5"
    assert result.credits_remaining == "3.250000" and result.usage.cost_usd == "0.000100"
    assert result.warnings == ()


def test_low_credit_warning_uses_the_preference(isolated_env: Path) -> None:
    def gw(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"choices": [{"message": {"content": "ok"}}]},
            headers={"x-dexto-credits-remaining": "0.20"},
        )

    with _model(Recorder(gw)) as model:
        assert "credits are low" in model.complete("hi").warnings[0]
    (isolated_env / "preferences.yml").write_text("lowCreditsWarningUsd: 0.1\n")
    with _model(Recorder(gw)) as model:
        assert model.complete("hi").warnings == ()


def test_402_falls_back_once_with_native_id_and_own_key() -> None:
    rec = Recorder(lambda r: httpx.Response(402, json=_402))
    with _model(rec) as model:
        result = model.complete("hi")
    assert rec.hosts() == ["gw.test", "anthropic.test"]
    direct = rec.seen[1]
    assert direct.headers["x-api-key"] == OWN
    assert json.loads(direct.content)["model"] == "claude-sonnet-4-5-20250929"
    assert "x-dexto-session-id" not in direct.headers
    assert result.route.fell_back and result.text == "direct answer"
    assert result.credits_remaining == "0.00"


def test_402_sse_error_before_first_chunk_still_falls_back() -> None:
    rec = Recorder(
        lambda r: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_sse(_402)
        )
    )
    with _model(rec) as model:
        events = list(model.stream("hi"))
    assert rec.hosts() == ["gw.test", "anthropic.test"]
    last = events[-1]
    assert isinstance(last, Done) and last.result.route.fell_back


def test_402_after_output_was_delivered_does_not_fall_back() -> None:
    rec = Recorder(
        lambda r: httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=_sse(_chunk("partial "), _402),
        )
    )
    got: list[str] = []
    with _model(rec) as model, pytest.raises(InsufficientCreditsError) as info:
        for event in model.stream("hi"):
            if isinstance(event, TextDelta):
                got.append(event.text)
    assert got == ["partial "]
    assert rec.hosts() == ["gw.test"]
    assert info.value.balance_usd == "0.00"


@pytest.mark.parametrize(
    "status,error",
    [
        (500, UpstreamError),
        (502, UpstreamError),
        (429, UpstreamError),
        (401, AuthFailedError),
        (400, UpstreamError),
        (402, UpstreamError),
    ],
)
def test_no_other_error_switches_routes(status: int, error: type[Exception]) -> None:
    body = {"error": {"code": "SOMETHING_ELSE", "message": f"failed with {DXK}"}}
    rec = Recorder(lambda r: httpx.Response(status, json=body))
    with _model(rec) as model, pytest.raises(error) as info:
        model.complete("hi")
    assert rec.hosts() == ["gw.test"]
    assert DXK not in str(info.value) and OWN not in str(info.value)


def test_transport_failure_does_not_switch_routes() -> None:
    def boom(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    rec = Recorder(boom)
    with _model(rec) as model, pytest.raises(UpstreamError, match="Dexto gateway"):
        model.complete("hi")
    assert rec.hosts() == ["gw.test"]


def test_fallback_failure_is_reported_not_retried_again() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "gw.test":
            return httpx.Response(402, json=_402)
        return httpx.Response(401, json={"type": "error", "error": {"message": "bad key"}})

    seen: list[str] = []

    def recorded(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.host)
        return handler(req)

    env = dict(
        os.environ,
        DEXTO_API_KEY=DXK,
        DEXTO_GATEWAY_URL="http://gw.test",
        ANTHROPIC_BASE_URL="http://anthropic.test/v1",
        ANTHROPIC_API_KEY=OWN,
    )
    with open_model(SEL, env=env, transport=httpx.MockTransport(recorded)) as model:
        with pytest.raises(AuthFailedError, match="Anthropic") as info:
            model.complete("hi")
    assert seen == ["gw.test", "anthropic.test"]
    assert "env:ANTHROPIC_API_KEY" in info.value.fix and OWN not in str(info.value)


def test_exhausted_without_key_names_the_fixes() -> None:
    rec = Recorder(
        lambda r: httpx.Response(402, json=_402, headers={"x-dexto-credits-remaining": "0.000000"})
    )
    with _model(rec, own_key=False) as model, pytest.raises(InsufficientCreditsError) as info:
        list(model.stream("hi"))
    assert info.value.balance_usd == "0.000000"
    assert "top up" in info.value.fix and "ANTHROPIC_API_KEY" in info.value.fix
    assert rec.hosts() == ["gw.test"]
