"""A stream whose hold could not record its delivery (the database away at its first output):
the delivery goes to the spool before the first bytes, and a worker replaying the spool of the
dead worker bills it, exactly, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import make_account

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.db import Database
from dexto.gateway.pricing import estimate_tokens_cost, parse_price
from dexto.gateway.spool import Spool, claim_orphans, read_pending
from dexto.gateway.sweeper import ExpiredHold, spooled_hold
from tests.gateway.test_gw_crash_recovery import (
    GatewayProc,
    _balance_matches_ledger,
    _charges,
    _holds,
    _pg_admin,
    _rows,
    _wait_for,
    own_pg_db,  # noqa: F401 - a fixture
)

_HOLD = {
    "hold": 5000,
    "model": "fake/cheap",
    "key_id": "k1",
    "prompt_tokens": 12,
    "generation_id": "gen-1",
    "completion_tokens": 3,
}


def test_a_delivery_line_round_trips_to_the_hold_it_describes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append_delivered("r1", "acct", _HOLD)
    assert spool.path is not None and spool.outstanding == 1
    (rec,) = read_pending(spool.path.read_bytes())
    assert rec == {"rid": "r1", "account": "acct", "delivered": _HOLD}
    assert spooled_hold(rec) == ExpiredHold("r1", "acct", 5000, "fake/cheap", "k1", 12, "gen-1", 3)
    # A refreshed line (later generation id, more tokens) replaces the first one.
    spool.append_delivered("r1", "acct", {**_HOLD, "completion_tokens": 40})
    (rec,) = read_pending(spool.path.read_bytes())
    assert spooled_hold(rec).completion_tokens == 40
    spool.done("r1")
    assert spool.path.read_bytes() == b"" and spool.outstanding == 0
    spool.close()


def test_a_settlement_line_wins_over_a_delivery_line_in_either_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    kw = {"overdraft_limit_micros": 0, "model": "fake/cheap", "estimated": False}
    spool.append_delivered("a", "acct", _HOLD)
    spool.append("a", "acct", 70, kw)
    spool.append("b", "acct", 80, kw)
    spool.append_delivered("b", "acct", _HOLD)
    assert spool.path is not None
    recs = {r["rid"]: r for r in read_pending(spool.path.read_bytes())}
    assert (recs["a"]["cost"], recs["b"]["cost"]) == (70, 80)
    spool.close()


def test_claim_orphans_hands_delivery_lines_to_their_settler(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append_delivered("d1", "acct", _HOLD)
    spool.append("s1", "acct", 9, {"model": "fake/cheap"})
    spool.close()  # outstanding: the file stays, its lock free
    got: list[Any] = []

    async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
        got.append(("settle", rid, cost))
        return None

    async def delivered(rec: dict[str, Any]) -> object:
        got.append(("delivered", rec["rid"], rec["delivered"]["hold"]))
        return None

    # Without a delivery settler the delivery line is left (and the file with it).
    n = asyncio.run(claim_orphans(tmp_path, settle, on_error=lambda e: None))
    assert n == 1 and got == [("settle", "s1", 9)]
    (path,) = list(tmp_path.glob("*.jsonl"))
    assert [r["rid"] for r in read_pending(path.read_bytes())] == ["d1"]
    got.clear()
    n = asyncio.run(
        claim_orphans(tmp_path, settle, on_error=lambda e: None, settle_delivered=delivered)
    )
    assert n == 1 and got == [("delivered", "d1", 5000)]
    assert not list(tmp_path.glob("*.jsonl"))


class _FirstChunk(threading.Thread):
    """A stream read until its first content chunk (the upstream then pauses)."""

    def __init__(self, url: str, key: str, fake: dict[str, Any] | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.fake = fake or {"latency_ms": 1500, "chunks": 5, "chunk_delay_ms": 20_000}
        self.request_id = ""
        self.content = False  # a content chunk arrived
        self.got_first = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        body = {
            "model": "fake/cheap",
            "stream": True,
            "messages": [{"role": "user", "content": f"spooled delivery {uuid.uuid4().hex}"}],
            "fake": self.fake,
        }
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(timeout=60) as c:
                with c.stream(
                    "POST", self.url + "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    self.request_id = r.headers["x-request-id"]
                    got = b""
                    for part in r.iter_raw():
                        got += part
                        if b'"content"' in got:
                            self.content = True
                            self.got_first.set()
                            self.stop.wait(60)
                            break
        except httpx.HTTPError:
            pass
        finally:
            self.got_first.set()


def _spooled_delivery(spool_dir: Path, rid: str, account_id: str) -> str:
    """The one delivery line in the worker's spool file is ``rid``'s: its generation id."""
    (spooled,) = list(spool_dir.glob("*.jsonl"))
    (rec,) = read_pending(spooled.read_bytes())
    assert (rec["rid"], rec["account"]) == (rid, account_id)
    gen_id = str(rec["delivered"]["generation_id"])
    assert gen_id.startswith("gen-")
    return gen_id


def _replayed_by_a_new_worker(
    db_url: str,
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
    env: dict[str, str],
    rid: str,
    gen_id: str,
) -> tuple[int, int, str | None, str | None]:
    """Start a new worker on the same spool directory; once it settled ``rid`` from the spool
    (charged the generation record's cost, ``spool:generation``) and removed the file, return
    ``rid``'s charge: (amount, estimated, reason, settled_by)."""
    spool_dir = Path(env["DEXTO_GATEWAY_SPOOL_DIR"])
    gw2 = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: rid in _charges(db_url), "the spooled delivery to be settled", 60)
        _wait_for(lambda: not list(spool_dir.glob("*.jsonl")), "the spool file to go")
    finally:
        gw2.stop()
    charge = _charges(db_url)[rid]
    expected = fake[0].generations.document(fake[0].generations.items[gen_id])["data"]
    assert charge[0] == round(expected["total_cost"] * 1_000_000) and charge[0] > 0
    swept = _rows(db_url, "SELECT action, reason FROM swept_holds WHERE request_id = ?", (rid,))
    assert swept == [("settled", "spool:generation")]
    return charge


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_after_a_failed_delivery_record_is_billed_from_the_spool(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    db_url, name = own_pg_db
    account_id, key = make_account(db_url, "spooled@example.com", 10_000_000)
    spool_dir = tmp_path / "spool"
    env = {
        "DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir),
        "DEXTO_GATEWAY_HOLD_TTL_S": "2",
        "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3",
    }
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    s = _FirstChunk(gw.url, key)
    try:
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        try:
            assert s.got_first.wait(60) and s.request_id
            # The first chunk reached the client: its delivery is in the spool (fsynced).
            gen_id = _spooled_delivery(spool_dir, s.request_id, account_id)
            os.kill(gw.proc.pid, signal.SIGKILL)
            gw.proc.wait(timeout=30)
        finally:
            s.stop.set()
            _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        gw.stop()
    rid = s.request_id
    # The hold does not record the delivery: the sweeper alone would release it unbilled.
    assert _rows(db_url, "SELECT delivered FROM holds WHERE request_id = ?", (rid,)) == [(0,)]
    assert rid not in _charges(db_url)
    _, estimated, reason, by = _replayed_by_a_new_worker(db_url, fake, tmp_path, env, rid, gen_id)
    assert list(_charges(db_url)) == [rid]
    assert (estimated, reason, by) == (0, None, "sweeper")
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, account_id)


def _delete_holds(db_url: str) -> None:
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.write():
            conn.execute("DELETE FROM holds")
    finally:
        db.close_all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_hold_gone_before_the_first_output_is_spooled_and_billed_after_sigkill(
    backend: str,
    request: pytest.FixtureRequest,
    sqlite_url: str,
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    """The hold is gone when the stream's first output arrives (as a sweeper leaves a hold that
    expired before it, or a database crash an admission it had not flushed): the delivery
    record finds nothing to update, so the delivery goes to the spool before the first chunk;
    a worker SIGKILLed then is billed once, from the spool, the generation record's cost."""
    db_url = sqlite_url if backend == "sqlite" else request.getfixturevalue("own_pg_db")[0]
    account_id, key = make_account(db_url, "gonehold@example.com", 10_000_000)
    spool_dir = tmp_path / "spool"
    env = {"DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir), "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3"}
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    s = _FirstChunk(gw.url, key)
    try:
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        _delete_holds(db_url)
        assert s.got_first.wait(60) and s.content and s.request_id
        gen_id = _spooled_delivery(spool_dir, s.request_id, account_id)
        assert b"hold gone at its delivery record" in gw.log_path.read_bytes()
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(timeout=30)
    finally:
        s.stop.set()
        gw.stop()
    rid = s.request_id
    assert _holds(db_url) == 0 and rid not in _charges(db_url)
    _, estimated, _, by = _replayed_by_a_new_worker(db_url, fake, tmp_path, env, rid, gen_id)
    assert (estimated, by) == (0, "sweeper")
    _balance_matches_ledger(db_url, account_id)


def _pg_row_locker(db_url: str) -> Any:
    """A connection of the test's own whose open transaction locks every hold row."""
    import psycopg

    conn = psycopg.connect(db_url)
    conn.execute("SELECT request_id FROM holds FOR UPDATE")
    return conn


@pytest.mark.slow
@pytest.mark.postgres
def test_a_delivery_record_stuck_on_a_lock_is_spooled_and_the_stream_goes_on(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    """The slow path: the hold's delivery record waits on a row lock (held by another
    connection). After ``RECORD_WAIT_S`` the delivery goes to the spool and the first chunk is
    relayed while the record is still waiting; the record lands once the lock is gone; a worker
    SIGKILLed then is billed once, from the spool, exactly the generation record's cost."""
    db_url, _ = own_pg_db
    account_id, key = make_account(db_url, "slowrecord@example.com", 10_000_000)
    spool_dir = tmp_path / "spool"
    env = {"DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir), "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3"}
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    s = _FirstChunk(gw.url, key)
    try:
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        locker = _pg_row_locker(db_url)
        try:
            assert s.got_first.wait(60) and s.content and s.request_id
            # Relayed with the record still blocked: the hold does not say delivered yet, and
            # the delivery is in the spool (fsynced before the chunk went out).
            delivered = "SELECT delivered FROM holds WHERE request_id = ?"
            assert _rows(db_url, delivered, (s.request_id,)) == [(0,)]
            gen_id = _spooled_delivery(spool_dir, s.request_id, account_id)
        finally:
            locker.rollback()
            locker.close()
        _wait_for(lambda: _rows(db_url, delivered, (s.request_id,)) == [(1,)], "the record")
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(timeout=30)
    finally:
        s.stop.set()
        gw.stop()
    rid = s.request_id
    _, estimated, _, by = _replayed_by_a_new_worker(db_url, fake, tmp_path, env, rid, gen_id)
    assert list(_charges(db_url)) == [rid]
    assert (estimated, by) == (0, "sweeper")
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, account_id)


def _delivery_lines(path: Path, rid: str) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_bytes().splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if doc.get("rid") == rid and "delivered" in doc:
            lines.append(doc["delivered"])
    return lines


@pytest.mark.slow
@pytest.mark.postgres
def test_failed_progress_updates_refresh_the_spooled_delivery(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    """The progress refresh: while the database stays away, each failed hold progress update
    appends a delivery line with the tokens delivered so far. After a SIGKILL, with the
    generation record gone, the replay estimates from the last line's tokens, not the first's."""
    db_url, name = own_pg_db
    account_id, key = make_account(db_url, "refresh@example.com", 10_000_000)
    spool_dir = tmp_path / "spool"
    env = {
        "DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir),
        "DEXTO_GATEWAY_HOLD_TTL_S": "1",
        "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3",
    }
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    s = _FirstChunk(gw.url, key, {"latency_ms": 1500, "chunks": 400, "chunk_delay_ms": 50})
    try:
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        try:
            assert s.got_first.wait(60) and s.content and s.request_id
            rid = s.request_id
            (spooled,) = list(spool_dir.glob("*.jsonl"))

            def refreshed() -> bool:
                lines = _delivery_lines(spooled, rid)
                return len(lines) >= 3 and lines[-1]["completion_tokens"] >= 10

            _wait_for(refreshed, "refreshed delivery lines")
            os.kill(gw.proc.pid, signal.SIGKILL)
            gw.proc.wait(timeout=30)
        finally:
            s.stop.set()
            _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        gw.stop()
    lines = _delivery_lines(spooled, rid)
    first, last = lines[0], lines[-1]
    assert last["completion_tokens"] > first["completion_tokens"]
    assert [d["completion_tokens"] for d in lines] == sorted(d["completion_tokens"] for d in lines)
    assert last["generation_id"] == first["generation_id"]
    assert {k: v for k, v in last.items() if k != "completion_tokens"} == {
        k: v for k, v in first.items() if k != "completion_tokens"
    }
    # The generation record is gone: the replay estimates (on its third round).
    del fake[0].generations.items[str(last["generation_id"])]
    with httpx.Client() as c:
        models = c.get(fake[1] + "/models").json()["data"]
    price = parse_price(next(m for m in models if m["id"] == "fake/cheap"))
    assert price is not None

    def estimate(d: dict[str, Any]) -> int:
        guess = estimate_tokens_cost(int(d["prompt_tokens"]), int(d["completion_tokens"]), price)
        assert guess is not None
        return min(int(d["hold"]), guess)

    assert estimate(first) < estimate(last) < int(last["hold"])
    gw2 = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: rid in _charges(db_url), "the spooled delivery to be settled", 60)
        _wait_for(lambda: not list(spool_dir.glob("*.jsonl")), "the spool file to go")
    finally:
        gw2.stop()
    assert _charges(db_url) == {rid: (estimate(last), 1, "spool:estimate", "sweeper")}
    _balance_matches_ledger(db_url, account_id)
