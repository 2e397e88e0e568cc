"""Device-login throttling: the back-off rule, its bound, brute force over fresh codes, code
issuance limits, cross-site posts, and the sweeper."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from _gwhelpers import Gateway, device_csrf, make_user, start_gateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway import throttle
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate

PASSWORD = "correct horse battery"
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("failures", "free", "base", "expected"),
    [
        (0, 5, 30, 0),
        (4, 5, 30, 0),
        (5, 5, 30, 30),
        (6, 5, 30, 60),
        (9, 5, 30, 480),
        (10, 5, 30, 900),  # capped at MAX_BLOCK_S
        (500, 5, 30, 900),
        (10, 10, 1, 1),
    ],
)
def test_backoff_rule(failures: int, free: int, base: float, expected: float) -> None:
    assert throttle.backoff_s(failures, free, base) == expected


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def conn(db_url: str) -> Iterator[Conn]:
    db = Database(db_url)
    migrate(db)
    c = db.connect()
    yield c
    db.close_all()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(gaps=st.lists(st.integers(min_value=0, max_value=400_000), min_size=1, max_size=60))
def test_at_most_ten_judged_failures_per_15_minutes_and_never_locked_for_good(
    conn: Conn, gaps: list[int]
) -> None:
    """An attacker tries at arbitrary times; count the attempts that were judged."""
    subject = f"acct:h{time.monotonic_ns()}"
    now = 10**12
    judged: list[int] = []
    for gap in gaps:
        now += gap
        wait = throttle.attempt(conn, [(subject, throttle.ACCOUNT_FREE)], 30, now=now)
        if wait == 0:
            judged.append(now)
        else:
            assert 1 <= wait <= throttle.MAX_BLOCK_S
    for i, start in enumerate(judged):
        in_window = [t for t in judged[i:] if t < start + throttle.WINDOW_S * 1000]
        assert len(in_window) <= 10
    # Whatever happened, one attempt after the announced wait is judged (no lasting lockout).
    wait = throttle.attempt(conn, [(subject, throttle.ACCOUNT_FREE)], 30, now=now + 1)
    if wait:
        assert throttle.attempt(conn, [(subject, 5)], 30, now=now + 1 + wait * 1000) == 0


def _post(c: httpx.Client, token: str, code: str, email: str, password: str) -> httpx.Response:
    return c.post(
        "/device",
        data={"user_code": code, "email": email, "password": password, "csrf": token},
    )


@pytest.fixture
def gw(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> Iterator[Gateway]:
    with start_gateway(sqlite_url, fake[1], login_backoff_s=1.0, device_codes_per_minute=0) as gw:
        yield gw


def test_brute_force_over_fresh_codes_is_throttled(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    base = 4.0  # long enough that the block outlives a slow machine's pause after the burst
    with start_gateway(sqlite_url, fake[1], login_backoff_s=base, device_codes_per_minute=0) as gw:
        _brute_force(gw, base)


def _brute_force(gw: Gateway, base: float) -> None:
    make_user(gw.db_url, "victim@example.com", PASSWORD)
    statuses: list[int] = []
    with httpx.Client(base_url=gw.url, timeout=60) as c:
        token = device_csrf(c)

        def guess(i: int) -> int:
            code = c.post("/auth/device/code").json()["user_code"]
            r = _post(c, token, code, "victim@example.com", f"guess-{i}")
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                assert "Too many failed sign-ins" in r.text
            return r.status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(guess, range(40)))
        elapsed = time.monotonic() - started
        # The blocks last base·1, 2, 4, … s: each one that ends while the burst still runs
        # lets exactly one more guess be judged (on a fast machine: none ends).
        expired = int(math.log2(elapsed / base + 1))
        allowed = throttle.ACCOUNT_FREE + expired
        judged = [s for s in statuses if s != 429]
        assert set(judged) == {401} and len(judged) <= allowed, (len(judged), elapsed)
        assert statuses.count(429) >= 40 - allowed
        # The right password is refused too while the account is blocked …
        code = c.post("/auth/device/code").json()
        blocked = _post(c, token, code["user_code"], "victim@example.com", PASSWORD)
        assert blocked.status_code == 429
        # … and accepted once the announced wait is over: no lasting lockout.
        time.sleep(int(blocked.headers["retry-after"]))
        ok = _post(c, token, code["user_code"], "victim@example.com", PASSWORD)
        assert ok.status_code == 200 and "Approved" in ok.text


def test_failures_count_per_address_across_accounts(
    db_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(db_url, fake[1], device_codes_per_minute=0) as gw:
        with httpx.Client(base_url=gw.url, timeout=60) as c:
            token = device_csrf(c)
            statuses = []
            for i in range(14):
                code = c.post("/auth/device/code").json()["user_code"]
                statuses.append(_post(c, token, code, f"nobody{i}@x.io", "x").status_code)
    # Each email is new (its own account counter), so only the address counter blocks.
    n = throttle.ADDRESS_FREE
    assert statuses == [401] * n + [429] * (14 - n)


def test_code_issuance_is_limited_per_address(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(sqlite_url, fake[1], device_codes_per_minute=3) as gw:
        with httpx.Client(base_url=gw.url) as c:
            got = [c.post("/auth/device/code") for _ in range(5)]
    assert [r.status_code for r in got] == [200, 200, 200, 429, 429]
    err = got[3].json()["error"]
    assert err["code"] == "RATE_LIMITED" and int(got[3].headers["retry-after"]) >= 1


def test_cross_site_posts_are_refused(gw: Gateway) -> None:
    make_user(gw.db_url, "owner@example.com", PASSWORD)
    with httpx.Client(base_url=gw.url) as c:
        code = c.post("/auth/device/code").json()
        token = device_csrf(c)
        form = {
            "user_code": code["user_code"],
            "email": "owner@example.com",
            "password": PASSWORD,
            "csrf": token,
        }
        evil = c.post("/device", data=form, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and "Cross-site" in evil.text
        evil_ref = c.post("/device", data=form, headers={"Referer": "http://evil.example/x"})
        assert evil_ref.status_code == 403
        no_token = c.post("/device", data={**form, "csrf": ""})
        assert no_token.status_code == 403
        forged = c.post("/device", data={**form, "csrf": token[:-4] + "0000"})
        assert forged.status_code == 403
    with httpx.Client(base_url=gw.url) as other:  # a token without its cookie is refused
        assert other.post("/device", data=form).status_code == 403
    with httpx.Client(base_url=gw.url) as c:
        poll = c.post("/auth/device/token", json={"device_code": code["device_code"]})
        assert poll.json()["error"]["code"] == "AUTHORIZATION_PENDING"
        token = device_csrf(c)
        same = c.post("/device", data={**form, "csrf": token}, headers={"Origin": gw.url})
        assert same.status_code == 200 and "Approved" in same.text
        page = c.get("/device")
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/device" in cookie


def test_sweeper_deletes_expired_codes(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    with start_gateway(sqlite_url, fake[1], sweep_interval_s=0.05) as gw:
        with httpx.Client(base_url=gw.url) as c:
            live = c.post("/auth/device/code").json()
            old = c.post("/auth/device/code").json()
        db = Database(sqlite_url)
        conn = db.connect()
        try:
            with conn.write():
                conn.execute(
                    "UPDATE device_codes SET expires_at = 1 WHERE user_code = ?",
                    (old["user_code"],),
                )
            deadline = time.monotonic() + 20
            while True:
                with conn.read():
                    codes = {r[0] for r in conn.all("SELECT user_code FROM device_codes")}
                if old["user_code"] not in codes:
                    break
                assert time.monotonic() < deadline, "expired code not swept"
                time.sleep(0.05)
            assert live["user_code"] in codes
        finally:
            db.close_all()
        with httpx.Client(base_url=gw.url) as c:
            poll = c.post("/auth/device/token", json={"device_code": old["device_code"]})
        assert poll.json()["error"]["code"] == "INVALID_GRANT"


def test_holder_with_a_known_browser_is_not_locked_out_by_an_attacker(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with start_gateway(sqlite_url, fake[1], device_codes_per_minute=0) as gw:
        make_user(gw.db_url, "holder@example.com", PASSWORD)
        with (
            httpx.Client(base_url=gw.url) as holder,
            httpx.Client(base_url=gw.url) as attacker,
            httpx.Client(base_url=gw.url) as new_browser,
        ):
            first = holder.post("/auth/device/code").json()["user_code"]
            ok = _post(holder, device_csrf(holder), first, "holder@example.com", PASSWORD)
            assert ok.status_code == 200 and "dexto_device_known" in ok.headers["set-cookie"]
            token = device_csrf(attacker)
            statuses = []
            for i in range(8):
                code = attacker.post("/auth/device/code").json()["user_code"]
                statuses.append(
                    _post(attacker, token, code, "holder@example.com", f"g{i}").status_code
                )
            n = throttle.ACCOUNT_FREE
            assert statuses == [401] * n + [429] * (8 - n)
            # The account is blocked (default back-off, 30 s) for a browser it has not seen …
            code = new_browser.post("/auth/device/code").json()["user_code"]
            r = _post(new_browser, device_csrf(new_browser), code, "holder@example.com", PASSWORD)
            assert r.status_code == 429
            # … but the holder's browser signs in, and its success does not reset the block.
            r = _post(holder, device_csrf(holder), code, "holder@example.com", PASSWORD)
            assert r.status_code == 200 and "Approved" in r.text
            code = attacker.post("/auth/device/code").json()["user_code"]
            assert _post(attacker, token, code, "holder@example.com", "g9").status_code == 429
