"""Malformed bodies on every endpoint that takes one: 400/413/415 JSON errors, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from _gwhelpers import Gateway, start_gateway
from _gwproc import ADMIN_TOKEN

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.validation import ADMIN_BODY_LIMIT

JSON = "application/json"
DEEP = b"[" * 100_000
ENDPOINTS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/auth/device/token",
    "/auth/device/code",
    "/admin/accounts",
    "/admin/accounts/{account}/credits",
    "/admin/accounts/{account}/keys",
]
# (name, body, content type, statuses allowed)
CASES: list[tuple[str, bytes, str, set[int]]] = [
    ("deep nesting", DEEP, JSON, {400, 413}),  # 413 where the limit is under 100,000 bytes
    ("deep nesting, small", b"[" * 5_000, JSON, {400}),
    ("deep objects", b'{"a":' * 1_500, JSON, {400}),
    ("not utf-8", b'{"model": "\xff\xfe"}', JSON, {400}),
    ("utf-16", '{"model": "x"}'.encode("utf-16"), JSON, {400}),
    ("NaN", b'{"model": NaN, "usd": NaN}', JSON, {400}),
    (
        "lone surrogate",
        b'{"model": "\\ud800", "email": "\\udfff@x.io", "usd": "\\ud800"}',
        JSON,
        {400},
    ),
    ("truncated", b'{"model": "a", "messages": [', JSON, {400}),
    ("array", b"[1, 2, 3]", JSON, {400}),
    ("string", b'"hello"', JSON, {400}),
    (
        "wrong types",
        b'{"model": 1, "messages": {}, "email": [], "usd": {}, "name": 5,'
        b' "device_code": 7, "credits": true, "password": 1}',
        JSON,
        {400},
    ),
    ("huge number", b'{"model": "m", "usd": 1' + b"0" * 5000 + b"}", JSON, {400}),
    ("charset utf-16", b'{"model": "x"}', JSON + "; charset=utf-16", {400, 415}),
    ("text/plain", b'{"model": "x"}', "text/plain", {400, 415}),
]


@pytest.fixture
def gw(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> Iterator[Gateway]:
    from dexto._secret import Secret

    with start_gateway(
        sqlite_url, fake[1], admin_token=Secret(ADMIN_TOKEN), max_body_bytes=100_000
    ) as gw:
        yield gw


def _headers(gw: Gateway, path: str, ctype: str) -> dict[str, str]:
    headers = {"Content-Type": ctype}
    if path.startswith("/admin"):
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    elif path.startswith("/v1"):
        headers["Authorization"] = f"Bearer {gw.key}"
    return headers


def _check_error(r: httpx.Response, allowed: set[int], what: str) -> None:
    assert r.status_code in allowed, (what, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(JSON), what
    err = r.json()["error"]
    assert isinstance(err["code"], str) and err["message"], what


def test_malformed_bodies_get_json_errors(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        for path in ENDPOINTS:
            url = path.format(account=gw.account_id)
            for name, body, ctype, allowed in CASES:
                if path == "/auth/device/code" and name in ("wrong types", "huge number"):
                    continue  # its JSON object body has no fields to get wrong
                if path == "/auth/device/token" and ctype == "text/plain":
                    allowed = {415}
                r = c.post(url, content=body, headers=_headers(gw, path, ctype))
                _check_error(r, allowed, f"{path} {name}")


def test_oversized_bodies_are_413(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        for path, size in (
            ("/v1/chat/completions", 100_001),
            ("/admin/accounts", ADMIN_BODY_LIMIT + 1),
            ("/auth/device/token", 10_001),
            ("/auth/device/code", 10_001),
        ):
            body = b'{"x": "' + b"a" * size + b'"}'
            r = c.post(path, content=body, headers=_headers(gw, path, JSON))
            _check_error(r, {413}, path)

            def chunks(body: bytes = body) -> Iterator[bytes]:  # no Content-Length: chunked
                for i in range(0, len(body), 8192):
                    yield body[i : i + 8192]

            r = c.post(path, content=chunks(), headers=_headers(gw, path, JSON))
            _check_error(r, {413}, path + " chunked")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        r = c.post("/device", content=b"a=" + b"b" * 20_000, headers=form)
        _check_error(r, {413}, "/device")


def test_device_form_encoding_and_type(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        r = c.post(
            "/device",
            content=b"user_code=\xff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        _check_error(r, {400}, "form not utf-8")
        r = c.post("/device", content=b"[" * 5000, headers={"Content-Type": JSON})
        _check_error(r, {415}, "form as json")


def test_unexpected_errors_are_json_500_logged_as_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio
    import logging

    from dexto.gateway.guard import ErrorGuard
    from dexto.gateway.state import GatewayState

    async def broken(scope: object, receive: object, send: object) -> None:
        raise KeyError("boom")

    def no_state() -> GatewayState:
        raise RuntimeError("not started")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=ErrorGuard(broken, no_state))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            return await c.post("/anything", content=b"{}")

    with caplog.at_level(logging.ERROR, logger="dexto.gateway"):
        r = asyncio.run(call())
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_ERROR"
    records = [rec for rec in caplog.records if rec.getMessage() == "unhandled error"]
    assert len(records) == 1 and records[0].exc_info is None
    assert records[0].fields["error"] == "KeyError: 'boom'"  # type: ignore[attr-defined]
