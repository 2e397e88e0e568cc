"""The billing core on real databases: holds, settlement, idempotency, overdraft floor, expiry.

Runs on SQLite always and on PostgreSQL (marker ``postgres``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.gateway import accounts, ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import LATEST_VERSION, MIGRATIONS, current_version, migrate

L = 5_000  # overdraft limit used in these tests


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def conn(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Conn]:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    assert migrate(db) == sorted(MIGRATIONS)
    assert migrate(db) == []  # idempotent
    c = db.connect()
    yield c
    db.close_all()


def _account(conn: Conn, credits: int) -> tuple[str, str]:
    acct = accounts.create_account(
        conn, f"u{credits}-{id(conn)}@example.com", credits_micros=credits
    )
    _, key = accounts.create_key(conn, acct.id)
    return acct.id, accounts.hash_key(key)


def _balance(conn: Conn, account_id: str) -> tuple[int, int, int]:
    with conn.read():
        b = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
        s = conn.one(
            "SELECT COALESCE(SUM(amount_micros),0) FROM ledger WHERE account_id = ?", (account_id,)
        )
        h = conn.one("SELECT COUNT(*) FROM holds WHERE account_id = ?", (account_id,))
    assert b and s and h
    return int(b[0]), int(s[0]), int(h[0])


def test_schema_version(conn: Conn) -> None:
    assert current_version(conn) == LATEST_VERSION


def test_admit_settle_release(conn: Conn) -> None:
    acct, kh = _account(conn, 10_000)
    assert ledger.admit(conn, "nokey", "r0", 100, ttl_ms=60_000).status == "invalid_key"
    r1 = ledger.admit(conn, kh, "r1", 6_000, ttl_ms=60_000)
    assert (r1.status, r1.available_micros) == ("ok", 4_000)
    # the held money cannot be spent twice
    assert ledger.admit(conn, kh, "r2", 6_000, ttl_ms=60_000).status == "insufficient"
    s = ledger.settle(conn, "r1", acct, 1_234, overdraft_limit_micros=L, model="m")
    assert (s.charged_micros, s.balance_micros, s.duplicate) == (1_234, 8_766, False)
    again = ledger.settle(conn, "r1", acct, 1_234, overdraft_limit_micros=L)
    assert again.duplicate and again.charged_micros == 0
    assert _balance(conn, acct) == (8_766, 8_766, 0)
    assert ledger.admit(conn, kh, "r3", 100, ttl_ms=60_000).status == "ok"
    assert ledger.release(conn, "r3") is True
    assert ledger.release(conn, "r3") is False
    assert _balance(conn, acct) == (8_766, 8_766, 0)


def test_revoked_key_is_refused(conn: Conn) -> None:
    acct = accounts.create_account(conn, "rev@example.com", credits_micros=1_000)
    info, key = accounts.create_key(conn, acct.id)
    assert accounts.revoke_key(conn, info["id"])
    res = ledger.admit(conn, accounts.hash_key(key), "r", 1, ttl_ms=1000)
    assert res.status == "invalid_key"


def test_overdraft_floor_and_write_off(conn: Conn) -> None:
    acct, kh = _account(conn, 1_000)
    assert ledger.admit(conn, kh, "a", 1_000, ttl_ms=60_000).status == "ok"
    s = ledger.settle(conn, "a", acct, 100_000, overdraft_limit_micros=L)
    assert (s.charged_micros, s.written_off_micros, s.balance_micros) == (6_000, 94_000, -L)
    # negative balance: nothing more is admitted
    assert ledger.admit(conn, kh, "b", 1, ttl_ms=60_000).status == "insufficient"
    assert _balance(conn, acct) == (-L, -L, 0)


def test_expired_holds_stop_counting_and_are_swept(conn: Conn) -> None:
    acct, kh = _account(conn, 1_000)
    now = ledger.now_ms()
    assert ledger.admit(conn, kh, "old", 1_000, ttl_ms=1_000, now=now - 5_000).status == "ok"
    assert ledger.admit(conn, kh, "new", 1_000, ttl_ms=60_000, now=now).status == "ok"
    assert ledger.sweep_expired(conn, now) == 1
    # a late settle of the expired request still charges exactly once
    ledger.settle(conn, "old", acct, 10, overdraft_limit_micros=L)
    ledger.settle(conn, "new", acct, 10, overdraft_limit_micros=L)
    assert _balance(conn, acct) == (980, 980, 0)


def test_ledger_is_append_only(conn: Conn) -> None:
    acct, _ = _account(conn, 1_000)
    with pytest.raises(Exception, match="append-only"):
        with conn.write():
            conn.execute("UPDATE ledger SET amount_micros = 0 WHERE account_id = ?", (acct,))
    with pytest.raises(Exception, match="append-only"):
        with conn.write():
            conn.execute("DELETE FROM ledger WHERE account_id = ?", (acct,))


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(1, 3_000)),
        st.tuples(st.just("settle"), st.integers(0, 8_000)),
        st.tuples(st.just("resettle"), st.integers(0, 8_000)),
        st.tuples(st.just("sweep"), st.integers(0, 8_000)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("credit"), st.integers(1, 5_000)),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, start=st.integers(0, 20_000))
def test_ledger_invariants_property(conn: Conn, ops: list[tuple[str, int]], start: int) -> None:
    """Any interleaving of admissions, settlements (incl. duplicates and sweeper settlements
    racing a late settle), releases and top-ups matches a reference model of the rules:
    admitted iff ``balance - open holds >= hold``; a settle debits ``min(cost, balance + L)``
    once per request id; balance == sum(ledger) >= -L; no hold outlives its request."""
    acct = accounts.create_account(
        conn, f"p{ledger.now_ms()}{id(ops)}@example.com", credits_micros=start
    )
    _, key = accounts.create_key(conn, acct.id)
    kh = accounts.hash_key(key)
    model_bal = start
    open_holds: dict[str, int] = {}
    settled: list[str] = []
    n = 0
    for op, amount in ops:
        n += 1
        rid = f"{acct.id}-{n}"
        if op == "admit":
            res = ledger.admit(conn, kh, rid, amount, ttl_ms=60_000)
            fits = model_bal - sum(open_holds.values()) >= amount
            assert res.status == ("ok" if fits else "insufficient")
            if fits:
                assert res.available_micros == model_bal - sum(open_holds.values()) - amount
                open_holds[rid] = amount
        elif op in ("settle", "sweep") and open_holds:
            r = next(iter(open_holds))
            if op == "sweep":  # the sweeper first (hold expired), then the live worker's settle
                with conn.write():
                    conn.execute("UPDATE holds SET expires_at = 0 WHERE request_id = ?", (r,))
                first = ledger.settle(
                    conn, r, acct.id, amount, overdraft_limit_micros=L, expired_before=1
                )
                late = ledger.settle(conn, r, acct.id, amount + 1, overdraft_limit_micros=L)
                assert late.duplicate and late.charged_micros == 0
            else:
                first = ledger.settle(conn, r, acct.id, amount, overdraft_limit_micros=L)
            debit = min(amount, max(0, model_bal + L))
            assert (first.charged_micros, first.written_off_micros) == (debit, amount - debit)
            model_bal -= debit
            del open_holds[r]
            settled.append(r)
        elif op == "resettle" and settled:
            dup = ledger.settle(conn, settled[-1], acct.id, amount, overdraft_limit_micros=L)
            assert dup.duplicate and dup.charged_micros == 0
        elif op == "release" and open_holds:
            assert ledger.release(conn, open_holds.popitem()[0])
        elif op == "credit":
            ledger.credit(conn, acct.id, amount, request_id=f"c-{rid}")
            model_bal += amount
        bal, total, holds = _balance(conn, acct.id)
        assert bal == total == model_bal
        assert bal >= -L
        assert holds == len(open_holds)
    for r in open_holds:
        ledger.release(conn, r)
    assert _balance(conn, acct.id)[2] == 0
