"""``dexto gateway reconcile``: estimated charges, write-offs and swept holds, with totals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dexto.cli.main import main
from dexto.gateway import accounts, ledger
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate

HOUR = 3_600_000


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = out
    return code, doc, err


def _populate(url: str) -> None:
    db = Database(url)
    migrate(db)
    conn = db.connect()
    try:
        acct = accounts.create_account(conn, "r@example.com", credits_micros=10_000)
        _, key = accounts.create_key(conn, acct.id)
        kh = accounts.hash_key(key)
        now = ledger.now_ms()
        old = now - 5 * HOUR
        for rid in ("exact", "est", "over", "swept", "idle"):
            assert ledger.admit(conn, kh, rid, 1_000, ttl_ms=60_000, now=old).status == "ok"
        ledger.settle(conn, "exact", acct.id, 700, overdraft_limit_micros=0, now=old)
        ledger.settle(
            conn,
            "est",
            acct.id,
            300,
            overdraft_limit_micros=0,
            estimated=True,
            estimate_reason="no_usage",
            now=old,
        )
        # 9,000 left: a 9,500 cost with no overdraft allowed writes 500 off
        ledger.settle(conn, "over", acct.id, 9_500, overdraft_limit_micros=0, now=now)
        with conn.write():
            conn.execute("UPDATE holds SET delivered = 1 WHERE request_id = 'swept'")
        ledger.settle(
            conn,
            "swept",
            acct.id,
            0,
            overdraft_limit_micros=0,
            estimated=True,
            estimate_reason="swept:estimate",
            settled_by="sweeper",
            expired_before=now,
            now=now,
            swept_reason="swept:estimate",
        )
        assert ledger.sweep_expired(conn, now) == 1  # "idle": nothing delivered, released
    finally:
        db.close_all()


def test_reconcile_lists_estimates_write_offs_and_swept_holds(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    _populate(sqlite_url)
    code, doc, _ = _run(capsys, "gateway", "reconcile", "--db", sqlite_url, "--json")
    assert code == 0
    t = doc["totals"]
    assert (t["estimatedCount"], t["estimatedUsd"]) == (2, "0.000300")
    assert t["estimatedByReason"] == {
        "no_usage": {"count": 1, "usd": "0.000300"},
        "swept:estimate": {"count": 1, "usd": "0.000000"},
    }
    assert (t["writtenOffCount"], t["writtenOffUsd"]) == (1, "0.000500")
    assert (t["sweptSettledCount"], t["sweptReleasedCount"]) == (1, 1)
    assert t["sweptReleasedHoldUsd"] == "0.001000"
    assert [r["requestId"] for r in doc["estimatedCharges"]] == ["est", "swept"]
    assert doc["estimatedCharges"][1]["settledBy"] == "sweeper"
    assert doc["writtenOff"][0] | {"ts": None} == {
        "ts": None,
        "requestId": "over",
        "accountId": doc["writtenOff"][0]["accountId"],
        "costUsd": "0.009500",
        "chargedUsd": "0.009000",
        "writtenOffUsd": "0.000500",
    }
    assert {(r["requestId"], r["action"]) for r in doc["sweptHolds"]} == {
        ("swept", "settled"),
        ("idle", "released"),
    }
    # --since drops what is older: the 5-hour-old estimate goes, the recent entries stay.
    code, doc, _ = _run(
        capsys, "gateway", "reconcile", "--db", sqlite_url, "--since", "1h", "--json"
    )
    assert code == 0 and [r["requestId"] for r in doc["estimatedCharges"]] == ["swept"]
    code, text, _ = _run(capsys, "gateway", "reconcile", "--db", sqlite_url)
    assert code == 0 and "written off: 1  total $0.000500" in text


def test_reconcile_bad_since_names_the_flag(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    _populate(sqlite_url)
    code, doc, _ = _run(
        capsys, "gateway", "reconcile", "--db", sqlite_url, "--since", "last tuesday", "--json"
    )
    assert code != 0 and "--since" in json.dumps(doc) and "24h" in json.dumps(doc)
