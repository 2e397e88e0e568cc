"""The gateway's own VACUUM of ``holds`` (pg_vacuum): run once the table's dead rows pass the
threshold, not before, and not at all (one warning) when the gateway's role does not own the
table. Real PostgreSQL; the shared server runs with autovacuum off, so ``vacuum_count`` counts
only these VACUUMs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from dexto.gateway import accounts, pg_ledger
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate
from dexto.gateway.pg_pool import PgPool
from dexto.gateway.pg_vacuum import HoldsVacuum

pytestmark = pytest.mark.postgres


@pytest.fixture
def kh(pg_url: str) -> Iterator[tuple[str, str]]:
    db = Database(pg_url)
    migrate(db)
    conn = db.connect()
    acct = accounts.create_account(conn, "v@example.com", credits_micros=10**9)
    _, key = accounts.create_key(conn, acct.id)
    yield acct.id, accounts.hash_key(key)
    db.close_all()


def _holds_stats(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables"
            " WHERE relid = 'holds'::regclass"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _churn(pool: PgPool, account: str, key_hash: str, n: int) -> None:
    """``n`` requests' holds inserted and deleted (admit, then settle)."""
    for i in range(n):
        rid = f"r{i}-{uuid.uuid4().hex[:6]}"
        params = pg_ledger.admit_params(key_hash, rid, 10, ttl_ms=60_000, now=i)
        assert (await pool.run(pg_ledger.admit_one, params)).status == "ok"
        settle = pg_ledger.settle_params(rid, account, 7, overdraft_limit_micros=0, now=i)
        await pool.run(pg_ledger.settle_one, settle)


async def _round_until(vac: HoldsVacuum, timeout: float = 20.0) -> bool:
    """Rounds until one vacuums (the statistics reach pg_stat_user_tables within about a
    second of the writes); False if none did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await vac.round():
            return True
        await asyncio.sleep(0.2)
    return False


def test_holds_are_vacuumed_once_their_dead_rows_pass_the_threshold(
    pg_url: str, kh: tuple[str, str]
) -> None:
    account, key_hash = kh

    async def main() -> tuple[bool, bool, tuple[int, int], tuple[int, int]]:
        pool = PgPool(pg_url, 2)
        try:
            vac = HoldsVacuum(pool, logging.getLogger("test"), dead_rows=150)
            await _churn(pool, account, key_hash, 100)
            await asyncio.sleep(1.5)  # past the statistics' flush interval
            below = await vac.round()  # 100 dead rows < 150
            before = _holds_stats(pg_url)
            await _churn(pool, account, key_hash, 100)
            ran = await _round_until(vac)
            return below, ran, before, _holds_stats(pg_url)
        finally:
            await pool.aclose()

    below, ran, before, after = asyncio.run(main())
    assert not below and before[1] == 0
    assert before[0] >= 100
    assert ran
    assert after[1] == 1  # exactly our VACUUM
    assert after[0] < 100  # the dead rows are gone


def test_a_role_that_does_not_own_holds_never_vacuums_and_says_so_once(
    pg_url: str, kh: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    schema = pg_url.rsplit("%3D", 1)[1]
    role = f"dexto_t_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT, DELETE ON holds TO "{role}"')
    base = pg_url.split("://", 1)[1].split("@", 1)[-1]
    role_url = f"postgresql://{role}@{base}"

    async def main() -> tuple[bool, bool, bool | None]:
        pool = PgPool(role_url, 1)
        try:
            vac = HoldsVacuum(pool, logging.getLogger("dexto.gateway.test"), dead_rows=0)
            first, second = await vac.round(), await vac.round()
            return first, second, vac.owned
        finally:
            await pool.aclose()

    try:
        with caplog.at_level(logging.WARNING, logger="dexto.gateway.test"):
            first, second, owned = asyncio.run(main())
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON holds FROM "{role}"')
            conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
    assert (first, second, owned) == (False, False, False)
    warned = [r for r in caplog.records if "does not own" in r.getMessage()]
    assert len(warned) == 1
    assert _holds_stats(pg_url)[1] == 0
