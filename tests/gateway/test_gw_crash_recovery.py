"""Real processes: a worker SIGKILLed mid-stream, SIGTERM with streams in flight, PostgreSQL
lost mid-request. Every request that delivered output ends up charged exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import UPSTREAM_KEY, make_account, start_gateway, wait_healthy

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import free_port
from dexto.gateway import ledger
from dexto.gateway.db import Database

pytestmark = pytest.mark.slow
_DEFERRED = "dexto_gateway_settle_deferred_total "


def _wait_for(cond: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class GatewayProc:
    """``dexto gateway serve`` as a real process (its own session, so signals reach it only)."""

    def __init__(self, db_url: str, upstream: str, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_GATEWAY_")}
        base.update(
            {"DEXTO_GATEWAY_UPSTREAM_KEY": UPSTREAM_KEY, "DEXTO_GATEWAY_RATE_LIMIT_RPS": "0"}
        )
        base.update(env)
        self.log_path = tmp / f"gw-{self.port}.log"
        self._log = self.log_path.open("wb")
        argv = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve", "--db", db_url]
        argv += ["--upstream", upstream, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv, env=base, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_healthy(self.url, self.proc, log_path=self.log_path, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._log.close()


class Stream(threading.Thread):
    """One streaming request read in the background; ``started`` once 3 content chunks came."""

    def __init__(self, url: str, key: str, i: int, fake: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.body = {
            "model": "fake/cheap",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"stream {i} {uuid.uuid4().hex}"}],
            "fake": fake,
        }
        self.started = threading.Event()
        self.request_id = ""
        self.text = b""
        self.error: str | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(timeout=60) as c:
                with c.stream(
                    "POST", self.url + "/v1/chat/completions", json=self.body, headers=headers
                ) as r:
                    self.request_id = r.headers["x-request-id"]
                    for part in r.iter_raw():
                        self.text += part
                        if self.text.count(b'"content"') >= 3:
                            self.started.set()
        except httpx.HTTPError as exc:
            self.error = type(exc).__name__
        finally:
            self.started.set()

    def usage_cost(self) -> float:
        for event in self.text.split(b"\n\n"):
            if b'"usage"' in event:
                return float(json.loads(event[5:])["usage"]["cost"])
        raise AssertionError("no usage chunk")


def _rows(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.read():
            return conn.all(sql, params)
    finally:
        db.close_all()


def _charges(db_url: str) -> dict[str, tuple[int, int, str | None, str | None]]:
    rows = _rows(
        db_url,
        "SELECT request_id, -amount_micros, estimated, estimate_reason, settled_by FROM ledger"
        " WHERE kind = 'charge'",
    )
    return {str(r[0]): (int(r[1]), int(r[2]), r[3], r[4]) for r in rows}


def _holds(db_url: str) -> int:
    return int(_rows(db_url, "SELECT COUNT(*) FROM holds")[0][0])


def _balance_matches_ledger(db_url: str, account_id: str) -> None:
    (bal,) = _rows(db_url, "SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
    (total,) = _rows(
        db_url, "SELECT SUM(amount_micros) FROM ledger WHERE account_id = ?", (account_id,)
    )
    assert bal[0] == total[0]


def test_sigkill_mid_stream_every_delivered_stream_is_charged_once(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, key = make_account(sqlite_url, "kill@example.com", 10_000_000)
    env = {"DEXTO_GATEWAY_HOLD_TTL_S": "2", "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3"}
    gw = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    streams = [Stream(gw.url, key, i, {"chunks": 400, "chunk_delay_ms": 50}) for i in range(6)]
    try:
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(30)
        time.sleep(0.6)  # let the first-delivery hold updates land (flushed every 0.2 s)
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(timeout=30)
    finally:
        gw.stop()
    for s in streams:
        s.join(30)
    ids = [s.request_id for s in streams]
    assert all(ids) and _charges(sqlite_url) == {}  # nothing was settled by the dead worker
    gw2 = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: set(ids) <= set(_charges(sqlite_url)), "the sweeper to settle")
        charges = _charges(sqlite_url)
        for rid in ids:
            amount, estimated, reason, by = charges[rid]
            # priced from the upstream's generation record: exact, not an estimate
            assert amount > 0 and (estimated, reason, by) == (0, None, "sweeper")
        swept = _rows(sqlite_url, "SELECT request_id, action, reason FROM swept_holds")
        assert {(r[0], r[1], r[2]) for r in swept} == {
            (rid, "settled", "swept:generation") for rid in ids
        }
        assert _holds(sqlite_url) == 0
        # A late settle racing the sweeper (the dead worker's, had it lived) charges nothing.
        db = Database(sqlite_url)
        conn = db.connect()
        try:
            late = ledger.settle(conn, ids[0], account_id, 999, overdraft_limit_micros=0)
        finally:
            db.close_all()
        assert late.duplicate and late.charged_micros == 0
        assert _charges(sqlite_url) == charges
        _balance_matches_ledger(sqlite_url, account_id)
    finally:
        gw2.stop()


def test_an_unusable_spool_directory_does_not_stop_the_sweeper(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """The spool directory's parent is a file, so every spool replay fails: the sweeper still
    bills a dead worker's delivered stream from its generation record, and the problem is
    logged once, naming the setting to fix."""
    account_id, key = make_account(sqlite_url, "nospool@example.com", 10_000_000)
    (tmp_path / "not-a-dir").write_text("")
    env = {
        "DEXTO_GATEWAY_HOLD_TTL_S": "2",
        "DEXTO_GATEWAY_SWEEP_INTERVAL_S": "0.3",
        "DEXTO_GATEWAY_SPOOL_DIR": str(tmp_path / "not-a-dir" / "spool"),
    }
    gw = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    s = Stream(gw.url, key, 0, {"chunks": 400, "chunk_delay_ms": 50})
    try:
        s.start()
        assert s.started.wait(30)
        _wait_for(lambda: _rows(sqlite_url, "SELECT delivered FROM holds") == [(1,)], "the record")
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(timeout=30)
    finally:
        gw.stop()
    s.join(30)
    gw2 = GatewayProc(sqlite_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: s.request_id in _charges(sqlite_url), "the sweeper to settle")
        time.sleep(1)  # a few more sweep rounds, each failing to read the spool
    finally:
        gw2.stop()
    amount, estimated, reason, by = _charges(sqlite_url)[s.request_id]
    assert amount > 0 and (estimated, reason, by) == (0, None, "sweeper")
    assert _holds(sqlite_url) == 0
    _balance_matches_ledger(sqlite_url, account_id)
    logged = [
        json.loads(line) for line in gw2.log_path.read_text().splitlines() if line.startswith("{")
    ]
    unusable = [r for r in logged if r.get("msg") == "spool directory unusable"]
    assert len(unusable) == 1 and "DEXTO_GATEWAY_SPOOL_DIR" in unusable[0]["fix"]
    assert unusable[0]["spool_dir"] == env["DEXTO_GATEWAY_SPOOL_DIR"]


def _sigterm_mid_streams(
    db_url: str, upstream: str, tmp: Path, email: str, *, drain_s: int, n: int, chunks: int
) -> tuple[str, list[Stream]]:
    """``n`` streams of ``chunks`` chunks (50 ms apart) under way, then SIGTERM; returns once the
    streams and the gateway have ended: (account id, streams)."""
    account_id, key = make_account(db_url, email, 10_000_000)
    gw = GatewayProc(db_url, upstream, tmp, DEXTO_GATEWAY_DRAIN_S=str(drain_s))
    streams = [Stream(gw.url, key, i, {"chunks": chunks, "chunk_delay_ms": 50}) for i in range(n)]
    try:
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(30)
        os.kill(gw.proc.pid, signal.SIGTERM)
        for s in streams:
            s.join(60)
        assert gw.proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises it
    finally:
        gw.stop()
    return account_id, streams


def test_sigterm_lets_streams_finish_and_bills_them_exactly(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, streams = _sigterm_mid_streams(
        sqlite_url, fake[1], tmp_path, "term@example.com", drain_s=60, n=5, chunks=30
    )
    charges = _charges(sqlite_url)
    for s in streams:
        assert s.error is None and s.text.endswith(b"data: [DONE]\n\n")
        assert len(re.findall(rb'"content": ?"[^"]', s.text)) == 30  # non-empty content chunks
        amount, estimated, _, _ = charges[s.request_id]
        assert estimated == 0 and amount == round(s.usage_cost() * 1_000_000)
    assert _holds(sqlite_url) == 0
    _balance_matches_ledger(sqlite_url, account_id)


def test_sigterm_past_the_drain_deadline_bills_what_was_relayed(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, streams = _sigterm_mid_streams(
        sqlite_url, fake[1], tmp_path, "drain@example.com", drain_s=1, n=3, chunks=400
    )
    charges = _charges(sqlite_url)
    for s in streams:
        amount, estimated, reason, _ = charges[s.request_id]
        assert amount > 0 and (estimated, reason) == (1, "cancelled")
    assert _holds(sqlite_url) == 0
    _balance_matches_ledger(sqlite_url, account_id)


def test_requests_cancelled_at_the_drain_deadline_get_json_and_log_no_traceback(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """SIGTERM with a stream and a non-streaming request still running past ``DRAIN_S``: the
    stream is charged the estimate of what was relayed; the non-streaming request, whose
    answer had not started, gets a JSON 503 (not uvicorn's plain-text 500) and is not charged;
    the gateway's output holds no traceback."""
    account_id, key = make_account(sqlite_url, "cancelled@example.com", 10_000_000)
    gw = GatewayProc(sqlite_url, fake[1], tmp_path, DEXTO_GATEWAY_DRAIN_S="1")
    stream = Stream(gw.url, key, 0, {"chunks": 400, "chunk_delay_ms": 50})
    answer: dict[str, Any] = {}

    def slow_request() -> None:
        body = {
            "model": "fake/cheap",
            "messages": [{"role": "user", "content": "slow"}],
            "fake": {"latency_ms": 20_000},
        }
        with httpx.Client(timeout=60) as c:
            r = c.post(
                gw.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
        answer.update(status=r.status_code, type=r.headers.get("content-type"), body=r.text)

    slow = threading.Thread(target=slow_request, daemon=True)
    try:
        stream.start()
        assert stream.started.wait(30)
        slow.start()
        _wait_for(lambda: _holds(sqlite_url) == 2, "both holds")
        os.kill(gw.proc.pid, signal.SIGTERM)
        stream.join(60)
        slow.join(60)
        assert gw.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        gw.stop()
    assert answer["status"] == 503 and answer["type"] == "application/json"
    assert json.loads(answer["body"])["error"]["code"] == "SERVICE_UNAVAILABLE"
    charges = _charges(sqlite_url)
    assert list(charges) == [stream.request_id]
    assert charges[stream.request_id][1:3] == (1, "cancelled")
    assert _holds(sqlite_url) == 0
    _balance_matches_ledger(sqlite_url, account_id)
    output = gw.log_path.read_text()
    assert "Traceback" not in output and "Exception in ASGI application" not in output
    cancelled = [json.loads(x) for x in output.splitlines() if '"request cancelled"' in x]
    assert len(cancelled) == 2


@pytest.fixture
def own_pg_db() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of this test's own: (URL, name); dropped afterwards."""
    from tests.gateway.conftest import PG_BASE, _need, _pg_problem

    _need(_pg_problem())
    import psycopg

    name = f"dexto_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_BASE.rsplit("/", 1)[0]
    yield f"{base}/{name}", name
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _pg_admin(sql: str, *params: Any) -> None:
    import psycopg

    from tests.gateway.conftest import PG_BASE

    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(sql, params)


@pytest.mark.postgres
def test_postgres_lost_mid_request_every_completed_request_is_billed(
    own_pg_db: tuple[str, str], fake: tuple[FakeUpstream, str]
) -> None:
    db_url, name = own_pg_db
    with start_gateway(db_url, fake[1], credits_micros=10_000_000) as gw:
        streams = [
            Stream(gw.url, gw.key, i, {"chunks": 40, "chunk_delay_ms": 50}) for i in range(4)
        ]
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(30)
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        for s in streams:
            s.join(60)
            assert s.error is None and s.text.endswith(b"data: [DONE]\n\n")
        time.sleep(1.5)  # settlements are failing and deferred meanwhile
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        ids = {s.request_id for s in streams}
        _wait_for(lambda: ids <= set(_charges(db_url)), "deferred settlements")
        charges = _charges(db_url)
        for s in streams:
            amount, estimated, _, by = charges[s.request_id]
            assert estimated == 0 and by is None
            assert amount == round(s.usage_cost() * 1_000_000)
        assert _holds(db_url) == 0
        _balance_matches_ledger(db_url, gw.account_id)
        with httpx.Client() as c:
            metrics = c.get(gw.url + "/metrics").text
        deferred = [ln for ln in metrics.splitlines() if ln.startswith(_DEFERRED)]
        assert deferred and float(deferred[0].split()[-1]) >= 1  # the outage hit settlement


@pytest.mark.postgres
@pytest.mark.parametrize("spool_back", [True, False])
def test_a_settlement_the_spool_refused_is_spooled_again_and_billed_after_sigterm(
    own_pg_db: tuple[str, str], fake: tuple[FakeUpstream, str], tmp_path: Path, spool_back: bool
) -> None:
    """The database goes away while a non-streaming request waits for its upstream, and the
    spool cannot be written either (its directory's parent is a file): the client still gets
    its answer, the settlement stays in memory. The spool comes back; SIGTERM: the worker
    writes the settlement to the spool at shutdown, and a new gateway replays it once the
    database is back (without that, its hold — never delivered — would be released unbilled).
    If the spool still refuses it at shutdown, the loss is logged with the request id."""
    db_url, name = own_pg_db
    account_id, key = make_account(db_url, "spool@example.com", 10_000_000)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the spool directory's parent should be")
    spool_dir = blocker / "spool"
    env = {"DEXTO_GATEWAY_SPOOL_DIR": str(spool_dir)}
    gw = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        answer: list[httpx.Response] = []
        body = {
            "model": "fake/cheap",
            "messages": [{"role": "user", "content": "hi"}],
            "fake": {"latency_ms": 1500},
        }
        t = threading.Thread(
            target=lambda: answer.append(
                httpx.post(
                    gw.url + "/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )
            )
        )
        t.start()
        _wait_for(lambda: _holds(db_url) == 1, "the admission")
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name)
        t.join(60)
        assert answer and answer[0].status_code == 200
        request_id = answer[0].headers["x-request-id"]
        _wait_for(lambda: "settlement spool write failed" in gw.log_path.read_text(), "the log")
        if spool_back:
            blocker.unlink()  # the spool can be written again
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(timeout=60)
        lost = [
            json.loads(line)
            for line in gw.log_path.read_text().splitlines()
            if "deferred settlement lost" in line
        ]
    finally:
        gw.stop()
    if not spool_back:
        assert [(d["request_id"], d["account"], d["level"]) for d in lost] == [
            (request_id, account_id, "critical")
        ]
        assert lost[0]["cost_micros"] > 0
        return
    assert lost == []
    assert len(list(spool_dir.glob("*.jsonl"))) == 1
    _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert request_id not in _charges(db_url)
    replayer = GatewayProc(db_url, fake[1], tmp_path, **env)
    try:
        _wait_for(lambda: request_id in _charges(db_url), "the replayed settlement")
    finally:
        replayer.stop()
    amount, estimated, _, by = _charges(db_url)[request_id]
    assert amount > 0 and estimated == 0 and by is None
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, account_id)
