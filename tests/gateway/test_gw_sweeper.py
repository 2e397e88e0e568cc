"""The sweeper (in a running gateway) and the fake upstream's generation lookup."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, chat_body, make_account, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream import create_app as fake_app
from dexto.devtools.fake_upstream_parts import send_json
from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway import accounts, ledger
from dexto.gateway.db import Database


def test_generation_lookup_has_openrouters_shape(gateway: Gateway) -> None:
    fake_url = gateway.settings.upstream_url
    with httpx.Client(timeout=30) as c:
        r = c.post(gateway.v1 + "/chat/completions", json=chat_body(), headers=gateway.auth())
        gen_id = r.json()["id"]
        g = c.get(fake_url + "/generation", params={"id": gen_id})
        missing = c.get(fake_url + "/generation", params={"id": "gen-nope"})
    assert g.status_code == 200
    data = g.json()["data"]
    for key in (
        "id",
        "total_cost",
        "tokens_prompt",
        "tokens_completion",
        "native_tokens_prompt",
        "native_tokens_completion",
        "streamed",
        "cancelled",
        "finish_reason",
        "model",
        "provider_name",
        "created_at",
        "usage",
        "is_byok",
    ):
        assert key in data, key
    usage = r.json()["usage"]
    assert data["id"] == gen_id and data["streamed"] is False and data["cancelled"] is False
    assert data["total_cost"] == usage["dexto_upstream_cost"]
    assert (data["tokens_prompt"], data["tokens_completion"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": 404, "message": "Generation not found"}}


def _holds(db_url: str) -> list[tuple[Any, ...]]:
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.read():
            return conn.all("SELECT request_id FROM holds")
    finally:
        db.close_all()


def test_sweeper_estimates_when_the_generation_is_unknown_and_releases_idle_holds(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    _, key = make_account(sqlite_url, "sweep@example.com", 1_000_000)
    db = Database(sqlite_url)
    conn = db.connect()
    try:
        kh = accounts.hash_key(key)
        past = ledger.now_ms() - 10_000
        for rid in ("delivered", "idle"):
            res = ledger.admit(
                conn, kh, rid, 5_000, ttl_ms=1, now=past, model="fake/cheap", prompt_tokens=100
            )
            assert res.status == "ok"
        assert ledger.progress(
            conn, "delivered", generation_id="gen-unknown", completion_tokens=50, expires_at=past
        )
    finally:
        db.close_all()
    with start_gateway(sqlite_url, fake[1], email="other@example.com", sweep_interval_s=0.1) as gw:
        deadline = time.monotonic() + 20
        while _holds(gw.db_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        db = Database(sqlite_url)
        conn = db.connect()
        try:
            with conn.read():
                rows = conn.all(
                    "SELECT request_id, -amount_micros, estimated, estimate_reason, settled_by,"
                    " prompt_tokens, completion_tokens FROM ledger WHERE kind = 'charge'"
                )
                swept = conn.all("SELECT request_id, action FROM swept_holds ORDER BY 1")
        finally:
            db.close_all()
    # fake/cheap: $1/M prompt, $2/M completion → 100·1 + 50·2 µUSD, below the 5,000 hold
    assert rows == [("delivered", 200, 1, "swept:estimate", "sweeper", 100, 50)]
    assert swept == [("delivered", "settled"), ("idle", "released")]
    assert _holds(sqlite_url) == []


def test_run_chat_entry_point_runs_a_translated_request(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """``ChatCompletions.run_chat``: what a translating endpoint (e.g. /v1/responses) calls."""
    import json

    from _gwhelpers import settings_for

    from dexto.devtools.fake_upstream_server import ServerThread
    from dexto.gateway.app import create_app

    account_id, key = make_account(sqlite_url, "entry@example.com", 1_000_000)
    gw_app = create_app(settings_for(sqlite_url, fake[1]))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/translated":
            await gw_app(scope, receive, send)
            return
        msg = await receive()
        prompt = json.loads(msg["body"])["prompt"]
        body = json.dumps(chat_body(messages=[{"role": "user", "content": prompt}])).encode()
        assert gw_app.chat_handler is not None
        await gw_app.chat_handler.run_chat(scope, receive, send, body, route="translated")

    with ServerThread(app) as srv, httpx.Client(timeout=30) as c:
        r = c.post(
            srv.url + "/translated",
            json={"prompt": "hi"},
            headers={"Authorization": f"Bearer {key}"},
        )
        bad = c.post(srv.url + "/translated", json={"prompt": "hi"})
        metrics = c.get(srv.url + "/metrics").text
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("w0")
    assert r.headers["x-dexto-cost"] == f"{r.json()['usage']['cost']:.6f}"
    assert bad.status_code == 401
    assert 'dexto_gateway_requests_total{route="translated",status="200"} 1' in metrics
    db = Database(sqlite_url)
    try:
        conn = db.connect()
        with conn.read():
            row = conn.one(
                "SELECT COUNT(*) FROM ledger WHERE kind = 'charge' AND account_id = ?",
                (account_id,),
            )
    finally:
        db.close_all()
    assert row == (1,)


class _FlakyGeneration:
    """The fake upstream, but its first ``fail`` generation lookups answer 500 (``bad``: 200
    with a record whose cost cannot be used)."""

    def __init__(self, inner: FakeUpstream, fail: int, bad: bool = False) -> None:
        self.inner, self.fail, self.bad, self.calls = inner, fail, bad, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/generation"):
            self.calls += 1
            if self.calls <= self.fail:
                if self.bad:
                    body = b'{"data": {"id": "gen-x", "total_cost": -1, "tokens_prompt": null}}'
                    await send_json(send, 200, body)
                    return
                body = b'{"error": {"code": 500, "message": "try again"}}'
                await send_json(send, 500, body)
                return
        await self.inner(scope, receive, send)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("fail", [2, 100])
@pytest.mark.parametrize("bad", [False, True], ids=["error", "unusable-cost"])
def test_sweeper_retries_a_failed_generation_lookup_over_sweeps(
    request: pytest.FixtureRequest, sqlite_url: str, fail: int, dialect: str, bad: bool
) -> None:
    """A failed lookup (an error, or a record whose cost cannot be used) leaves the hold for
    the next sweep; the third failed sweep estimates.
    On PostgreSQL the sweeper's settle (with ``swept_reason``) runs the synchronous ledger code,
    the hold's deletion, the charge and the ``swept_holds`` row in one transaction."""
    from dexto.gateway.sweeper import LOOKUP_TRIES

    db_url = sqlite_url if dialect == "sqlite" else request.getfixturevalue("pg_url")

    flaky = _FlakyGeneration(fake_app(), fail, bad)
    with ServerThread(flaky) as up, httpx.Client(timeout=30) as c:
        upstream = up.url + "/api/v1"
        r = c.post(upstream + "/chat/completions", json=chat_body(model="fake/cheap"))
        gen_id = r.json()["id"]
        exact = round(r.json()["usage"]["cost"] * 1_000_000)
        _, key = make_account(db_url, "flaky@example.com", 1_000_000)
        db = Database(db_url)
        conn = db.connect()
        try:
            past = ledger.now_ms() - 10_000
            kh = accounts.hash_key(key)
            res = ledger.admit(
                conn, kh, "flaky", 50_000, ttl_ms=1, now=past, model="fake/cheap", prompt_tokens=9
            )
            assert res.status == "ok"
            assert ledger.progress(
                conn, "flaky", generation_id=gen_id, completion_tokens=7, expires_at=past
            )
        finally:
            db.close_all()
        with start_gateway(db_url, upstream, email="o@example.com", sweep_interval_s=0.1):
            deadline = time.monotonic() + 30
            while _holds(db_url) and time.monotonic() < deadline:
                time.sleep(0.05)
    db = Database(db_url)
    conn = db.connect()
    try:
        with conn.read():
            rows = conn.all(
                "SELECT -amount_micros, estimated, estimate_reason FROM ledger"
                " WHERE request_id = 'flaky'"
            )
            swept = conn.all("SELECT action, reason FROM swept_holds")
    finally:
        db.close_all()
    assert flaky.calls == LOOKUP_TRIES == 3
    if fail < LOOKUP_TRIES:
        assert rows == [(exact, 0, None)] and swept == [("settled", "swept:generation")]
    else:  # fake/cheap: 9 prompt tokens at $1/M + 7 completion at $2/M
        assert rows == [(9 + 14, 1, "swept:estimate")]
        assert swept == [("settled", "swept:estimate")]
