"""Worker reservations on PostgreSQL (gateway/reservations.py): non-streaming requests admitted
on a worker's reservation keep the ledger exact and never spend more than the account has;
a key revoked elsewhere is refused once the reservations are older than their maximum age;
idle, shut-down and killed workers' reservations stop holding money; SQLite and streams keep
their own holds."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, ledger_state, make_account, settings_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gw_crash_recovery import (  # noqa: F401 - own_pg_db: a fixture
    GatewayProc,
    _pg_admin,
    _rows,
    _wait_for,
    own_pg_db,
)

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway import accounts, ledger
from dexto.gateway.app import create_app
from dexto.gateway.db import Database
from dexto.gateway.leases import HoldLeases
from dexto.gateway.metrics import Metrics
from dexto.gateway.reservations import MAX_PER_KEY, RESERVATION_PREFIX, Reservations
from dexto.gateway.runner import DbRunner
from dexto.gateway.state import GatewayState

pytestmark = pytest.mark.postgres

COST = 1_000  # micro-USD: every request here costs, and holds, exactly this (the minimum hold)
BODY: dict[str, Any] = {
    "model": "fake/cheap",
    "max_tokens": 1,
    "messages": [{"role": "user", "content": "hi"}],
    "fake": {"cost": COST / 1e6, "chunks": 1},
}


@contextmanager
def gateways(
    db_url: str,
    upstream: str,
    key_credits: int,
    n: int = 2,
    email: str = "r@example.com",
    **overrides: Any,
) -> Iterator[list[Gateway]]:
    """``n`` gateways (real apps on loopback, each its own reservations) on one database and
    one account holding ``key_credits``."""
    account_id, key = make_account(db_url, email, key_credits)
    settings = settings_for(db_url, upstream, min_hold_usd_micros=COST, **overrides)
    with ExitStack() as stack:
        gws = []
        for _ in range(n):
            srv = stack.enter_context(ServerThread(create_app(settings)))
            gws.append(Gateway(srv.url, key, account_id, db_url, settings))
        yield gws


def _state(db_url: str, upstream: str) -> GatewayState:
    """What Reservations uses of a gateway's state: settings, a real runner, metrics, a log."""
    settings_ = settings_for(db_url, upstream, reserve_max_age_s=60.0)
    none: Any = None  # upstream, catalog and limiter: not used by Reservations
    return GatewayState(settings=settings_, runner=DbRunner(Database(db_url)), upstream=none,
                        catalog=none, limiter=none, log=logging.getLogger("dexto.gateway"),
                        metrics=Metrics())  # fmt: skip


def _post(c: httpx.Client, gw: Gateway, **extra: Any) -> httpx.Response:
    return c.post(gw.v1 + "/chat/completions", json={**BODY, **extra}, headers=gw.auth())


def _reservations(db_url: str) -> int:
    rows = _rows(db_url, "SELECT COUNT(*) FROM holds WHERE request_id LIKE ?",
                 (RESERVATION_PREFIX + "%",))  # fmt: skip
    return int(rows[0][0])


def _hold_micros(db_url: str) -> list[int]:
    rows = _rows(db_url, "SELECT hold_micros FROM ledger WHERE kind = 'charge'")
    return [int(r[0]) for r in rows]


def _counter(metrics: str, name: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith(f"dexto_gateway_{name} "))
    return float(line.split()[1])


def _burst(gws: list[Gateway], total: int, threads: int) -> list[int]:
    """``total`` requests from ``threads`` threads spread over the gateways: their statuses."""
    statuses: list[int] = []
    lock = threading.Lock()
    todo = iter(range(total))

    def work(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            while True:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                code = _post(c, gws[(n + i) % len(gws)]).status_code
                with lock:
                    statuses.append(code)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


def test_requests_admitted_on_reservations_are_charged_once_and_idle_reservations_end(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with gateways(pg_url, fake[1], 10_000_000, reserve_max_age_s=0.5) as gws:
        statuses = _burst(gws, 300, 12)
        assert statuses == [200] * 300
        state = ledger_state(pg_url, gws[0].account_id)
        assert len(state.charges) == 300 and state.balance == state.ledger_sum
        assert state.balance == 10_000_000 - 300 * COST
        # most requests were admitted on a reservation (no hold of their own: hold_micros 0)
        holds = _hold_micros(pg_url)
        assert holds.count(0) > 200 and set(holds) <= {0, COST}
        with httpx.Client(timeout=30) as c:
            texts = [c.get(gw.url + "/metrics").text for gw in gws]
        assert sum(_counter(t, "reserved_admissions_total") for t in texts) == holds.count(0)
        assert sum(_counter(t, "holds_placed_total") for t in texts) == 300
        assert sum(_counter(t, "reservations_placed_total") for t in texts) >= 2
        # idle: each reservation is retired at its age and released
        _wait_for(lambda: _reservations(pg_url) == 0, "idle reservations to be released", 5)
        assert ledger_state(pg_url, gws[0].account_id).holds == 0


@pytest.mark.parametrize("credits_requests", [70, 150, 300])
def test_reservations_never_spend_more_than_the_account_has(
    pg_url: str, fake: tuple[FakeUpstream, str], credits_requests: int
) -> None:
    """Every request costs exactly its hold; three gateways, twice as many requests as the
    account can pay for. Exactly the affordable ones run at most; nothing is written off."""
    credits = credits_requests * COST
    with gateways(pg_url, fake[1], credits, n=3, reserve_max_age_s=5.0) as gws:
        statuses = _burst(gws, 2 * credits_requests, 12)
        assert set(statuses) <= {200, 402}
        ok = statuses.count(200)
        state = ledger_state(pg_url, gws[0].account_id)
        assert [c[2] for c in state.charges] == [0] * ok  # no write-off: never overspent
        assert state.balance == credits - ok * COST >= 0
        assert state.balance == state.ledger_sum
        # reservations were used, and refusals came only once the money was held or spent:
        # at most what each gateway's unreleased reservations (two, 16 holds each) kept
        assert _hold_micros(pg_url).count(0) > 0
        assert ok >= credits_requests - 3 * MAX_PER_KEY * 16
    assert ledger_state(pg_url, gws[0].account_id).holds == 0  # shut down: released


def test_a_poor_account_gets_no_reservation_and_exact_402s(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """An account with less than four reservations' worth keeps one hold per request: with
    money for 20 requests, exactly 20 of 40 succeed."""
    with gateways(pg_url, fake[1], 20 * COST) as gws:
        statuses = _burst(gws, 40, 8)
        assert statuses.count(200) == 20 and statuses.count(402) == 20
        assert _hold_micros(pg_url) == [COST] * 20
        assert _reservations(pg_url) == 0


def test_a_key_revoked_elsewhere_is_refused_after_the_reservation_age(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with gateways(pg_url, fake[1], 10_000_000, reserve_max_age_s=0.3) as gws:
        with httpx.Client(timeout=30) as c:
            for gw in gws:  # a reservation on each
                for _ in range(3):
                    assert _post(c, gw).status_code == 200
            _wait_for(lambda: _reservations(pg_url) >= 1, "a reservation", 5)
            db = Database(pg_url)
            try:
                conn = db.connect()
                (key_id,) = conn.one(
                    "SELECT id FROM api_keys WHERE account_id = ?", (gws[0].account_id,)
                )
                accounts.revoke_key(conn, key_id)
            finally:
                db.close_all()
            time.sleep(0.4)
            assert [_post(c, gw).status_code for gw in gws for _ in range(3)] == [401] * 6
        _wait_for(lambda: _reservations(pg_url) == 0, "the reservations to be released", 5)


def test_streams_and_sqlite_keep_a_hold_of_their_own(
    pg_url: str, sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with gateways(pg_url, fake[1], 10_000_000) as gws, httpx.Client(timeout=30) as c:
        for _ in range(5):
            assert _post(c, gws[0]).status_code == 200
        _wait_for(lambda: _reservations(pg_url) == 1, "a reservation", 5)
        r = _post(c, gws[0], stream=True)
        assert r.status_code == 200 and b"[DONE]" in r.content
        assert _hold_micros(pg_url)[-1] == COST
    with gateways(sqlite_url, fake[1], 10_000_000, n=1) as gws, httpx.Client(timeout=30) as c:
        for _ in range(20):
            assert _post(c, gws[0]).status_code == 200
        assert _hold_micros(sqlite_url) == [COST] * 20


@pytest.mark.slow
def test_a_killed_workers_reservation_is_swept_at_its_expiry(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, key = make_account(pg_url, "k@example.com", 10_000_000)
    env = {"DEXTO_GATEWAY_HOLD_TTL_S": "2", "DEXTO_GATEWAY_RESERVE_MAX_AGE_S": "60",
           "DEXTO_GATEWAY_MIN_HOLD_MICROS": str(COST)}  # fmt: skip
    first = GatewayProc(pg_url, fake[1], tmp_path, **env)
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(5):
                r = c.post(first.url + "/v1/chat/completions", json=BODY,
                           headers={"Authorization": f"Bearer {key}"})  # fmt: skip
                assert r.status_code == 200
        _wait_for(lambda: _reservations(pg_url) == 1, "a reservation", 5)
        os.kill(first.proc.pid, signal.SIGKILL)
    finally:
        first.stop()
    assert _reservations(pg_url) == 1  # left behind by the killed worker
    second = GatewayProc(pg_url, fake[1], tmp_path, DEXTO_GATEWAY_SWEEP_INTERVAL_S="0.5", **env)
    try:
        _wait_for(lambda: _reservations(pg_url) == 0, "the sweeper to release it", 20)
    finally:
        second.stop()
    swept = _rows(pg_url, "SELECT action FROM swept_holds WHERE request_id LIKE ?",
                  (RESERVATION_PREFIX + "%",))  # fmt: skip
    assert [r[0] for r in swept] == ["released"]
    state = ledger_state(pg_url, account_id)
    assert len(state.charges) == 5 and state.balance == state.ledger_sum == 10_000_000 - 5 * COST


@pytest.mark.slow
def test_no_admission_on_a_reservation_once_the_database_is_seen_unavailable(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    """The first request after the database is lost is admitted on the reservation (nothing
    has failed yet) and answered, its settlement deferred; that failure opens the outage and
    every later request gets the outage's 503 instead of a local admission. All answered
    requests are charged once the database is back."""
    db_url, name = own_pg_db
    with gateways(db_url, fake[1], 10_000_000, n=1, reserve_max_age_s=60.0,
                  spool_dir=str(tmp_path / "spool")) as (gw,):  # fmt: skip
        with httpx.Client(timeout=30) as c:
            for _ in range(5):
                assert _post(c, gw).status_code == 200
            _wait_for(lambda: _reservations(db_url) == 1, "a reservation", 5)
            _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            _pg_admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name
            )
            statuses = [_post(c, gw).status_code for _ in range(4)]
            _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert statuses == [200, 503, 503, 503]
        _wait_for(lambda: len(ledger_state(db_url, gw.account_id).charges) == 6, "the charges")
    state = ledger_state(db_url, gw.account_id)
    assert state.balance == state.ledger_sum == 10_000_000 - 6 * COST and state.holds == 0


def test_slow_requests_keep_at_most_two_reservations_per_key(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """Requests slower than the reservation age: each retired reservation stays held until its
    last request ends, so without a cap a new one was placed every age and they piled up (8
    holding 128 holds' worth for ~20 running requests), refusing a larger request the account
    could pay for. A worker keeps at most two per key: the current one and one retired."""
    slow = {**BODY, "fake": {**BODY["fake"], "latency_ms": 1500}}
    with gateways(pg_url, fake[1], 200 * COST, n=1, reserve_max_age_s=0.2) as (gw,):
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _reservations(pg_url))
                time.sleep(0.05)

        def work(i: int) -> None:
            time.sleep(i * 0.1)
            with httpx.Client(timeout=30) as c:
                assert c.post(gw.v1 + "/chat/completions", json=slow,
                              headers=gw.auth()).status_code == 200  # fmt: skip

        threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for t in threads:
            t.start()
        time.sleep(1.6)
        with httpx.Client(timeout=30) as c:  # holds ~70 holds' worth: affordable
            big = _post(c, gw, max_tokens=35_000)
        for t in threads:
            t.join()
        done.set()
        watcher.join()
    assert 1 <= peak <= 2
    assert big.status_code == 200, big.text


@contextmanager
def _deferred_on_a_reservation(pg_url: str, gw: Gateway) -> Iterator[Any]:
    """Three requests (a reservation placed), then ledger rows refused by a trigger while
    ``fail_settle`` has a row, and one request admitted on the reservation whose settlement is
    therefore deferred. Yields the connection (``DELETE FROM fail_settle`` lets it land)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE fail_settle (x int)")
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF EXISTS (SELECT 1 FROM fail_settle) THEN RAISE EXCEPTION 'injected'; END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        with httpx.Client(timeout=30) as c:
            for _ in range(3):
                assert _post(c, gw).status_code == 200
            _wait_for(lambda: _reservations(pg_url) == 1, "a reservation", 5)
            conn.execute("INSERT INTO fail_settle VALUES (1)")
            assert _post(c, gw).status_code == 200  # admitted on it, settlement deferred
        yield conn


def test_a_reservation_with_a_deferred_settlement_stays_held_until_it_lands(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """A settlement that fails (here: a trigger refusing ledger rows while a flag row exists)
    is deferred; the request still counts on its reservation, so the reservation is not
    released at its age — its hold covers the pending charge until the charge lands."""
    with gateways(pg_url, fake[1], 10_000_000, n=1, reserve_max_age_s=1.0,
                  spool_dir=str(tmp_path / "spool")) as (gw,):  # fmt: skip
        with _deferred_on_a_reservation(pg_url, gw) as conn:
            time.sleep(1.5)  # past the reservation's age
            assert _reservations(pg_url) == 1  # still held: its charge has not landed
            assert len(ledger_state(pg_url, gw.account_id).charges) == 3
            conn.execute("DELETE FROM fail_settle")
            _wait_for(lambda: _reservations(pg_url) == 0, "the charge, then the release", 10)
        state = ledger_state(pg_url, gw.account_id)
        assert len(state.charges) == 4 and state.balance == state.ledger_sum


def test_a_reservation_left_with_only_deferred_settlements_stops_its_lease(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """As a request's own hold once its handler returned: a retired reservation whose only
    requests left have deferred settlements is no longer renewed, so it stops counting at
    HOLD_TTL_S if they never land (before, a settlement failing for good kept it renewed for
    the worker's life)."""
    with gateways(pg_url, fake[1], 10_000_000, n=1, reserve_max_age_s=0.3, hold_ttl_s=2,
                  spool_dir=str(tmp_path / "spool")) as (gw,):  # fmt: skip
        with _deferred_on_a_reservation(pg_url, gw) as conn:
            time.sleep(3.5)  # retired at 0.3 s; leases are renewed every 2/3 s
            (left,) = _rows(pg_url, "SELECT expires_at - ? FROM holds WHERE request_id LIKE ?",
                            (ledger.now_ms(), RESERVATION_PREFIX + "%"))  # fmt: skip
            assert left[0] < 0  # expired: not renewed
            conn.execute("DELETE FROM fail_settle")
            _wait_for(lambda: _reservations(pg_url) == 0, "the charge, then the release", 10)
        state = ledger_state(pg_url, gw.account_id)
        assert len(state.charges) == 4 and state.balance == state.ledger_sum


def test_a_zero_reservation_age_or_size_turns_reservations_off(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    for i, knob in enumerate(({"reserve_max_age_s": 0.0}, {"reserve_requests": 0})):
        with gateways(pg_url, fake[1], 10_000_000, n=1, email=f"{i}@example.com",
                      **knob) as (gw,), httpx.Client(timeout=30) as c:  # fmt: skip
            for _ in range(10):
                assert _post(c, gw).status_code == 200
            assert _reservations(pg_url) == 0
    assert _hold_micros(pg_url) == [COST] * 20


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(1, 6)),
        st.tuples(
            st.sampled_from(["settle", "release", "defer", "land", "end"]),
            st.integers(0, 30),
            st.integers(0, 8),
        ),  # fmt: skip
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(ops=_OPS)
def test_a_reservation_admits_only_what_its_amount_covers(
    pg_url: str, fake: tuple[FakeUpstream, str], ops: list[tuple[Any, ...]]
) -> None:
    """Random admissions, settlements (any charge), releases, deferrals, landings and handler
    ends on one reservation (amount 16 × 3), against a model: each admission is accepted
    exactly when the model's running holds + settled charges + its hold fit the amount (else
    the reservation retires and admits nothing more), and the reservation's hold is released
    exactly when it is retired and nothing admitted on it is still running or deferred."""
    _, key = make_account(pg_url, f"{uuid.uuid4().hex}@example.com", 10_000_000)
    key_hash = accounts.hash_key(key)
    st_ = _state(pg_url, fake[1])

    async def scenario() -> None:
        res = Reservations(st_, HoldLeases(st_))
        res.admitted(key_hash, "fake/cheap", 3, ledger.AdmitResult("ok", available_micros=10**9))
        for _ in range(200):
            if key_hash in res._current:
                break
            await asyncio.sleep(0.01)
        r = res._current[key_hash]
        assert r.amount == 3 * 16
        model: dict[str, tuple[str, int]] = {}  # rid → (state, hold or charge)
        retired = False
        for n, op in enumerate(ops):
            live = [rid for rid, (s, _) in model.items() if s in ("running", "deferred")]
            if op[0] == "admit":
                used = sum(v for s, v in model.values() if s != "released")
                got = res.admit(key_hash, f"q{n}", op[1])
                fits = not retired and used + op[1] <= r.amount
                assert (got is not None) is fits, (used, op, r.used)
                retired = retired or not fits
                if fits:
                    model[f"q{n}"] = ("running", op[1])
                continue
            if not live:
                continue
            rid = live[op[1] % len(live)]
            s, hold = model[rid]
            if op[0] == "settle" and s == "running":
                res.settled(rid, op[2])
                model[rid] = ("charged", op[2])
            elif op[0] == "release" and s == "running":
                assert res.released(rid)
                model[rid] = ("released", 0)
            elif op[0] == "defer" and s == "running":
                res.deferred(rid)
                model[rid] = ("deferred", hold)
            elif op[0] == "land" and s == "deferred":
                res.settled(rid, op[2])
                model[rid] = ("charged", op[2])
            elif op[0] == "end":
                res.ended(rid)
                if s == "running":
                    model[rid] = ("charged", hold)
            assert r.used == sum(v for s, v in model.values() if s != "released")
            still = any(s in ("running", "deferred") for s, _ in model.values())
            assert r.released is (retired and not still)
        await res.aclose()
        assert r.released is not any(s in ("running", "deferred") for s, _ in model.values())
        await st_.runner.aclose()

    asyncio.run(scenario())
    st_.runner.close()


def test_upstream_failures_admitted_on_a_reservation_are_not_charged(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """Upstream 5xx, 4xx and malformed answers of requests admitted on a reservation: nothing
    charged, each released from the reservation (it keeps admitting), the ledger exact."""
    with gateways(pg_url, fake[1], 10_000_000, n=1, reserve_max_age_s=30.0) as (gw,):
        with httpx.Client(timeout=30) as c:
            for _ in range(3):
                assert _post(c, gw).status_code == 200
            _wait_for(lambda: _reservations(pg_url) == 1, "a reservation", 5)
            failures = [{"status": 500}, {"status": 400}, {"malformed": True}] * 10
            codes = [_post(c, gw, fake={**BODY["fake"], **f}).status_code for f in failures]
            assert codes == [502, 400, 502] * 10
            assert _post(c, gw).status_code == 200
            text = c.get(gw.url + "/metrics").text
        assert _counter(text, "holds_released_total") == 30
        assert _counter(text, "reserved_admissions_total") >= 31  # all of them on it,
        assert _counter(text, "reservations_placed_total") == 1  # which never filled up
        assert _reservations(pg_url) == 1
    state = ledger_state(pg_url, gw.account_id)
    assert len(state.charges) == 4 and state.balance == state.ledger_sum == 10_000_000 - 4 * COST
    assert state.holds == 0


def test_the_openai_sdk_sees_the_same_answers_on_a_reservation(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """A real third-party client (the openai SDK): answers admitted on a reservation carry the
    same body, usage cost and Dexto headers as one admitted with a hold of its own."""
    import openai

    with gateways(pg_url, fake[1], 10_000_000, n=1, reserve_max_age_s=30.0) as (gw,):
        with openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0) as client:
            raws = [
                client.chat.completions.with_raw_response.create(
                    model="fake/cheap", max_tokens=1,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_body={"fake": BODY["fake"]},
                )
                for _ in range(6)
            ]  # fmt: skip
    holds = dict(_rows(pg_url, "SELECT request_id, hold_micros FROM ledger WHERE kind = 'charge'"))
    ids = [r.headers["x-request-id"] for r in raws]
    assert holds[ids[0]] == COST and holds[ids[-1]] == 0  # its own hold, then the reservation
    for raw in raws:
        done = raw.parse()
        assert done.choices[0].message.content and done.usage is not None
        assert raw.headers["x-dexto-cost"] == "0.001000"
        assert float(raw.headers["x-dexto-credits-remaining"]) > 9.9


def test_a_request_cancelled_on_a_reservation_is_released_from_it_and_not_charged(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """The request task cancelled while it waits for its upstream (a client gone, a shutdown
    deadline): its hold leaves the reservation's ``used``, nothing is charged, and the
    reservation is released at shutdown."""
    from test_gw_cancel_pg import _request, _running

    account_id, key = make_account(pg_url, "c@example.com", 10_000_000)
    settings_ = settings_for(
        pg_url, fake[1], min_hold_usd_micros=COST, reserve_max_age_s=30.0,
        spool_dir=str(tmp_path / "spool"),
    )  # fmt: skip
    app = create_app(settings_)

    async def main() -> None:
        async with _running(app):
            for _ in range(3):
                await _request(app, key, BODY["fake"])
            await _until_placed()
            assert app.chat_handler is not None
            (r,) = app.chat_handler.reservations._current.values()
            before = r.used
            task = _request(app, key, {**BODY["fake"], "latency_ms": 2000})
            await asyncio.sleep(0.3)
            assert r.used > before  # admitted on the reservation
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert r.used == before and not r.running

    async def _until_placed() -> None:
        for _ in range(200):
            if _reservations(pg_url) == 1:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no reservation")

    asyncio.run(main())
    state = ledger_state(pg_url, account_id)
    assert len(state.charges) == 3 and state.holds == 0 and state.balance == state.ledger_sum
