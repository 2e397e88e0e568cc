"""Real processes, killed at the worst moments for billing:

* right after the client received a stream's first chunk (before any batched hold update could
  have run): the hold already records the delivery, so the sweeper bills it, exactly;
* after a non-streaming answer whose settlement was deferred (PostgreSQL away): the settlement
  was spooled to disk first, so the next worker charges it, exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import make_account, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.spool import read_pending
from tests.gateway.test_gw_crash_recovery import (
    GatewayProc,
    Stream,
    _balance_matches_ledger,
    _charges,
    _holds,
    _pg_admin,
    _rows,
    _wait_for,
    own_pg_db,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.slow


def _first_chunk_then_kill(gw: GatewayProc, key: str) -> str:
    """Start a stream whose upstream pauses after its first chunk; SIGKILL the gateway as soon
    as the client has that chunk. Returns the request id."""
    body = {
        "model": "fake/cheap",
        "stream": True,
        "messages": [{"role": "user", "content": f"kill window {uuid.uuid4().hex}"}],
        "fake": {"chunks": 5, "chunk_delay_ms": 20_000},
    }
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers) as r:
            rid = r.headers["x-request-id"]
            got = b""
            for part in r.iter_raw():
                got += part
                if b'"content"' in got:
                    os.kill(gw.proc.pid, signal.SIGKILL)
                    break
    gw.proc.wait(timeout=30)
    return rid


def test_sigkill_right_after_the_first_chunk_is_billed_from_the_generation(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, key = make_account(sqlite_url, "window@example.com", 10_000_000)
    env = {"DEXTO_GATEWAY_HOLD_TTL_S": "2", "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3"}
    gw = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    try:
        rid = _first_chunk_then_kill(gw, key)
    finally:
        gw.stop()
    (row,) = _rows(
        sqlite_url, "SELECT delivered, generation_id FROM holds WHERE request_id = ?", (rid,)
    )
    assert row[0] == 1 and str(row[1]).startswith("gen-")  # recorded before the bytes went out
    gw2 = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: rid in _charges(sqlite_url), "the sweeper to settle", 60)
    finally:
        gw2.stop()
    amount, estimated, reason, by = _charges(sqlite_url)[rid]
    gen = fake[0].generations.items[str(row[1])]
    expected = fake[0].generations.document(gen)["data"]["total_cost"]
    assert (estimated, reason, by) == (0, None, "sweeper")
    assert amount == round(expected * 1_000_000) and amount > 0
    swept = _rows(sqlite_url, "SELECT action, reason FROM swept_holds WHERE request_id = ?", (rid,))
    assert swept == [("settled", "swept:generation")]
    assert _holds(sqlite_url) == 0
    _balance_matches_ledger(sqlite_url, account_id)


class _Post(threading.Thread):
    def __init__(self, url: str, key: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.body = url, key, body
        self.response: httpx.Response | None = None

    def run(self) -> None:
        with httpx.Client(timeout=60) as c:
            self.response = c.post(
                self.url + "/v1/chat/completions",
                json=self.body,
                headers={"Authorization": f"Bearer {self.key}"},
            )


@pytest.mark.postgres
def test_deferred_settlement_survives_sigkill_via_the_spool(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    db_url, name = own_pg_db
    account_id, key = make_account(db_url, "spool@example.com", 10_000_000)
    spool_dir = tmp_path / "spool"
    env = {
        "DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir),
        "DEXTO_GATEWAY_HOLD_TTL_S": "2",
        "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3",
    }
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        body = {
            "model": "fake/cheap",
            "messages": [{"role": "user", "content": f"deferred {uuid.uuid4().hex}"}],
            "fake": {"latency_ms": 1500},
        }
        post = _Post(gw.url, key, body)
        post.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        post.join(60)
        r = post.response
        assert r is not None and r.status_code == 200, r and r.text
        rid, cost = r.headers["x-request-id"], r.headers["x-dexto-cost"]
        (spooled,) = list(spool_dir.glob("*.jsonl"))
        (record,) = read_pending(spooled.read_bytes())
        assert (record["rid"], record["account"]) == (rid, account_id)
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(timeout=30)
    finally:
        gw.stop()
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    gw2 = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: rid in _charges(db_url), "the spooled settlement", 60)
        _wait_for(lambda: not list(spool_dir.glob("*.jsonl")), "the spool file to go")
        _wait_for(lambda: _holds(db_url) == 0, "the hold to go")
    finally:
        gw2.stop()
    charges = _charges(db_url)
    assert list(charges) == [rid]
    amount, estimated, _, by = charges[rid]
    assert (estimated, by) == (0, None)
    assert amount == round(float(cost) * 1_000_000) and amount > 0
    _balance_matches_ledger(db_url, account_id)


@pytest.mark.postgres
def test_stream_relays_when_its_delivery_record_fails_and_is_charged_later(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    """PostgreSQL goes away between admission and the first chunk: the stream is relayed in
    full anyway, its settlement is spooled and deferred, and it lands once the database is back."""
    db_url, name = own_pg_db
    spool_dir = tmp_path / "spool"
    with start_gateway(db_url, fake[1], credits_micros=10_000_000, spool_dir=str(spool_dir)) as gw:
        s = Stream(gw.url, gw.key, 0, {"latency_ms": 1500, "chunks": 5})
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        try:
            s.join(60)
            assert s.error is None and s.text.endswith(b"data: [DONE]\n\n")
            assert len(re.findall(rb'"content": ?"[^"]', s.text)) == 5
            (spooled,) = list(spool_dir.glob("*.jsonl"))
            assert [r["rid"] for r in read_pending(spooled.read_bytes())] == [s.request_id]
        finally:
            _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        _wait_for(lambda: s.request_id in _charges(db_url), "the deferred settlement")
        _wait_for(lambda: spooled.read_bytes() == b"", "the spool to be emptied")
    amount, estimated, _, by = _charges(db_url)[s.request_id]
    assert (estimated, by) == (0, None) and amount == round(s.usage_cost() * 1_000_000)
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, gw.account_id)
