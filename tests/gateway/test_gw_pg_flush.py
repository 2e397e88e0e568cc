"""The PostgreSQL flush barrier when its statement is refused for want of privilege: the pool
switches, once and with one log line, to a statement that needs no privilege beyond ``TEMP``,
and admissions and settlements keep working. The refusal is real: the pool connects as a role
made for the test and its barrier statement calls a function of the test's schema on which that
role has no ``EXECUTE`` (nothing server-wide is changed)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from dexto.gateway import accounts, ledger
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate
from dexto.gateway.pg_pool import FLUSH_FALLBACK, PgPool
from dexto.gateway.runner import DbRunner

pytestmark = pytest.mark.postgres

FALLBACK_LOG = "flush barrier: pg_logical_emit_message not permitted, using a temporary table"


def _schema(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


@pytest.fixture
def role_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` for a new login role with the gateway's privileges on the test's schema, and
    without EXECUTE on ``dexto_t_refused()`` (a function of that schema)."""
    db = Database(pg_url)
    migrate(db)
    db.close_all()
    schema, role = _schema(pg_url), f"dexto_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
        conn.execute(
            f'CREATE FUNCTION "{schema}".dexto_t_refused() RETURNS int LANGUAGE sql AS $$SELECT 1$$'
        )
        conn.execute(f'REVOKE EXECUTE ON FUNCTION "{schema}".dexto_t_refused() FROM PUBLIC')
    parts = urlsplit(pg_url)
    netloc = f"{role}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


class _RefusedPool(PgPool):
    flush_sql = "SELECT dexto_t_refused()"


def test_a_refused_barrier_falls_back_once_and_admissions_keep_working(
    pg_url: str, role_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        psycopg.connect(role_url, autocommit=True) as c,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        c.execute(_RefusedPool.flush_sql)

    async def main(kh: str, account_id: str) -> None:
        runner = DbRunner(Database(role_url), pool_size=2)
        pool = runner.pg = _RefusedPool(role_url, 2)
        assert runner.batcher is not None
        runner.batcher.sync_when_idle = False  # every call through the barrier (see pg_batch)
        try:
            for i in range(3):
                res = await runner.run(ledger.admit, kh, f"r{i}", 1_000, ttl_ms=60_000)
                assert res.status == "ok"
                s = await runner.run(
                    ledger.settle, f"r{i}", account_id, 400, overdraft_limit_micros=0
                )
                assert s.charged_micros == 400 and not s.duplicate
            # concurrent admissions share flushes; every one of them is served
            got = await asyncio.gather(
                *(runner.run(ledger.admit, kh, f"c{i}", 10, ttl_ms=60_000) for i in range(8))
            )
            assert [r.status for r in got] == ["ok"] * 8
            assert pool.flush_fallback and 7 <= pool.flushes <= 14
        finally:
            await runner.aclose()
            runner.close()

    db = Database(pg_url)
    try:
        conn = db.connect()
        acct = accounts.create_account(conn, "f@example.com", credits_micros=100_000)
        _, key = accounts.create_key(conn, acct.id)
        kh = accounts.hash_key(key)
        with caplog.at_level(logging.WARNING, logger="dexto.gateway"):
            asyncio.run(main(kh, acct.id))
        assert [r.getMessage() for r in caplog.records].count(FALLBACK_LOG) == 1
        with conn.read():
            assert conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (acct.id,)) == (
                100_000 - 3 * 400,
            )
            assert len(conn.all("SELECT request_id FROM holds")) == 8
    finally:
        db.close_all()


def test_the_fallback_statement_assigns_an_xid_and_writes_logged_catalog_rows(
    role_url: str,
) -> None:
    """What makes its commit wait for the WAL flush under synchronous_commit: the transaction
    has a transaction id and inserted rows into ``pg_class`` (a WAL-logged catalog)."""
    with psycopg.connect(role_url) as c:  # one transaction, so its statistics can be read
        assert c.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() == (None,)
        c.execute(FLUSH_FALLBACK)
        assert c.execute("SELECT pg_current_xact_id_if_assigned()").fetchone() != (None,)
        row = c.execute(
            "SELECT n_tup_ins, relpersistence FROM pg_stat_xact_sys_tables s"
            " JOIN pg_class k ON k.oid = s.relid WHERE s.relname = 'pg_class'"
        ).fetchone()
        assert row is not None and row[0] >= 1 and row[1] == "p"
        c.commit()
        c.execute(FLUSH_FALLBACK)  # dropped at commit: the name is free again
        c.commit()
