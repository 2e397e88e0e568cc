"""No pooled PostgreSQL connection is left idle in transaction after a call (psycopg opens a
transaction with a connection's first statement; a call that never commits or rolls back would
keep it open, holding its snapshot, so VACUUM cannot remove the rows it could still see); a read
unit is one snapshot, a write unit reads committed rows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
import pytest

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway import accounts
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.runner import DbRunner
from tests.gateway._gwhelpers import start_gateway

pytestmark = pytest.mark.postgres


def _state(url: str, pid: int) -> str | None:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return None if row is None else str(row[0])


def _bare_read(conn: Conn) -> int:
    """A call that reads outside ``read()``/``write()`` (as a lambda or an admin helper may)."""
    row = conn.one("SELECT pg_backend_pid()")
    assert row is not None
    return int(row[0])


def _failing_read(conn: Conn) -> None:
    conn.one("SELECT 1")
    raise LookupError("the call fails after its first statement")


def test_a_call_that_reads_outside_a_transaction_block_leaves_its_connection_idle(
    pg_url: str,
) -> None:
    async def main() -> None:
        runner = DbRunner(Database(pg_url), pool_size=1)
        try:
            pid = await runner.run(_bare_read)
            assert _state(pg_url, pid) == "idle"
            with pytest.raises(LookupError):
                await runner.run(_failing_read)
            assert _state(pg_url, pid) == "idle"  # the same pooled connection, rolled back
            assert await runner.run(_bare_read) == pid
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())


def test_a_call_whose_connection_dies_after_it_finished_keeps_its_result(pg_url: str) -> None:
    """The call's work is done (its write unit committed) when the server ends its connection:
    the closing rollback fails, the call's result stands, and the next call gets a fresh
    connection."""
    tag = f"dexto_t_{time.monotonic_ns()}"

    def write_then_lose_the_connection(conn: Conn) -> int:
        with conn.write():
            conn.execute(f"CREATE TABLE {tag} (x integer)")
        pid = _bare_read(conn)  # opens a transaction the runner will roll back
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return pid

    async def main() -> None:
        runner = DbRunner(Database(pg_url), pool_size=1)
        try:
            pid = await runner.run(write_then_lose_the_connection)
            for _ in range(100):
                if _state(pg_url, pid) is None:
                    break
                await asyncio.sleep(0.05)
            assert _state(pg_url, pid) is None
            assert await runner.run(_bare_read) != pid
        finally:
            await runner.aclose()
            runner.close()

    try:
        asyncio.run(main())
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {tag}")


def test_healthz_leaves_no_gateway_connection_idle_in_transaction(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        started = c.execute("SELECT clock_timestamp()").fetchone()
    with start_gateway(pg_url, fake[1]) as gw:
        with httpx.Client(timeout=10) as c:
            for _ in range(3):
                assert c.get(gw.url + "/healthz").json()["status"] == "ok"
        with psycopg.connect(pg_url, autocommit=True) as c:
            opened: list[Any] = c.execute(
                "SELECT state, query FROM pg_stat_activity"
                " WHERE backend_start > %s AND pid <> pg_backend_pid()",
                started,
            ).fetchall()
    assert opened, "the gateway opened no connection"
    assert [row for row in opened if str(row[0]).startswith("idle in transaction")] == []


def test_a_read_unit_sees_one_snapshot_and_a_write_unit_reads_committed(pg_url: str) -> None:
    """``Conn.read()`` on PostgreSQL: a row committed by another session between two of its
    statements is not seen by the second (metrics, usage and reconciliation reports add up
    within one unit); ``write()`` afterwards is READ COMMITTED again (its row locks see the
    latest committed rows)."""
    db = Database(pg_url)
    migrate(db)
    conn, other = db.connect(), db.connect()
    try:
        accounts.create_account(other, "first@example.com", credits_micros=1)
        with conn.read():
            assert conn.one("SHOW transaction_isolation") == ("repeatable read",)
            before = conn.one("SELECT COUNT(*) FROM accounts")
            accounts.create_account(other, "second@example.com", credits_micros=1)
            assert conn.one("SELECT COUNT(*) FROM accounts") == before == (1,)
        with conn.write():
            assert conn.one("SHOW transaction_isolation") == ("read committed",)
            assert conn.one("SELECT COUNT(*) FROM accounts") == (2,)
        with conn.read():
            assert conn.one("SELECT COUNT(*) FROM accounts") == (2,)
    finally:
        db.close_all()
