"""The async, one-statement ledger steps on PostgreSQL (pg_ledger, pg_pool, the runner's
dispatch): same results and same rows as the synchronous ledger for any sequence of operations;
a connection killed while idle is replaced before use; a cancelled admission on a real gateway
completes and its hold is released."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _gwhelpers import chat_body, make_account, settings_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway import accounts, ledger, pg_ledger
from dexto.gateway.app import create_app
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.pg_pool import PgPool
from dexto.gateway.runner import DbRunner

pytestmark = pytest.mark.postgres

L = 5_000  # overdraft limit used here
T0 = 1_700_000_000_000  # the operations' clock (milliseconds)


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[str, Conn]]:
    db = Database(pg_url)
    migrate(db)
    conn = db.connect()
    yield pg_url, conn
    db.close_all()


_rid = st.integers(0, 12)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 4_000), st.sampled_from(["ok", "old", "bad"])),
        st.tuples(st.just("settle"), _rid, st.integers(-10, 9_000)),
        st.tuples(st.just("settle_huge"), _rid, st.just(10**18)),
        st.tuples(st.just("sweep"), _rid, st.integers(0, 9_000)),
        st.tuples(st.just("sweep_live"), _rid, st.integers(0, 9_000)),
        st.tuples(st.just("release"), _rid, st.just(0)),
        st.tuples(st.just("progress"), _rid, st.integers(0, 3)),
        st.tuples(st.just("credit"), st.just(0), st.integers(1, 6_000)),
        st.tuples(st.just("no_account"), _rid, st.just(1)),
    ),
    max_size=30,
)


def _table_state(conn: Conn, account_id: str, key_id: str, prefix: str) -> dict[str, Any]:
    """The account's rows with its own ids replaced, so two accounts can be compared."""

    def norm(value: Any) -> Any:
        if value == account_id:
            return "ACCT"
        if value == key_id:
            return "KEY"
        if isinstance(value, str) and value.startswith(prefix):
            return value[len(prefix) :]
        return value

    with conn.read():
        bal = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
        holds = conn.all(
            "SELECT request_id, amount_micros, created_at, expires_at, model, key_id,"
            " prompt_tokens, generation_id, completion_tokens, delivered FROM holds"
            " WHERE account_id = ? ORDER BY request_id",
            (account_id,),
        )
        rows = conn.all(
            "SELECT CASE WHEN kind = 'credit' THEN NULL ELSE request_id END, kind,"
            " amount_micros, cost_micros, written_off_micros, hold_micros, estimated, model,"
            " prompt_tokens, completion_tokens, key_id,"
            " session_id, source, client_version,"
            " CASE WHEN kind = 'credit' THEN NULL ELSE created_at END,"
            " estimate_reason, settled_by FROM ledger WHERE account_id = ? ORDER BY id",
            (account_id,),
        )
    assert bal is not None
    return {
        "balance": int(bal[0]),
        "holds": [tuple(norm(v) for v in r) for r in holds],
        "ledger": [tuple(norm(v) for v in r) for r in rows],
    }


class _Side:
    """One account driven either by the sync ledger or by the async statements."""

    def __init__(self, conn: Conn, aconn: Any, tag: str, credits: int, use_async: bool) -> None:
        self.conn, self.aconn, self.use_async = conn, aconn, use_async
        acct = accounts.create_account(conn, f"{tag}@example.com", credits_micros=credits)
        info, key = accounts.create_key(conn, acct.id)
        revoked, old_key = accounts.create_key(conn, acct.id)
        accounts.revoke_key(conn, revoked["id"])
        self.account_id, self.key_id, self.prefix = acct.id, info["id"], f"{tag}-"
        self.keys = {
            "ok": accounts.hash_key(key),
            "old": accounts.hash_key(old_key),
            "bad": "0" * 64,
        }

    def rid(self, n: int) -> str:
        return f"{self.prefix}{n}"

    async def call(self, name: str, *args: Any, **kw: Any) -> Any:
        sync_fn = getattr(ledger, name)
        try:
            if self.use_async:
                impl = pg_ledger.implementation(sync_fn, kw)
                assert impl is not None
                result = await impl(self.aconn.cursor(), *args, **kw)
            else:
                result = sync_fn(self.conn, *args, **kw)
        except LookupError as exc:
            return ("LookupError", str(exc).replace(self.prefix, ""))
        if isinstance(result, ledger.AdmitResult):
            return (
                result.status,
                result.account_id == self.account_id,
                result.key_id == self.key_id,
                result.balance_micros,
                result.available_micros,
            )
        return result

    async def apply(self, n: int, op: tuple[str, int, Any]) -> Any:
        name, r, arg = op
        now = T0 + n * 10
        if name == "admit":
            return await self.call(
                "admit",
                self.keys[arg],
                self.rid(n),
                r,
                ttl_ms=60_000 if n % 3 else 5,
                now=now,
                model="m",
                prompt_tokens=n,
            )
        settle_kw: dict[str, Any] = {
            "overdraft_limit_micros": L,
            "model": "m",
            "prompt_tokens": n,
            "completion_tokens": r,
            "estimated": bool(n % 2),
            "key_id": self.key_id,
            "session_id": "s",
            "source": None,
            "client_version": "1",
            "now": now,
            "estimate_reason": "no_usage",
        }
        if name in ("settle", "settle_huge"):
            return await self.call("settle", self.rid(r), self.account_id, arg, **settle_kw)
        if name in ("sweep", "sweep_live"):
            if name == "sweep":
                with self.conn.write():
                    self.conn.execute(
                        "UPDATE holds SET expires_at = 0 WHERE request_id = ?", (self.rid(r),)
                    )
            return await self.call(
                "settle",
                self.rid(r),
                self.account_id,
                arg,
                **{**settle_kw, "settled_by": "sweeper", "expired_before": 1},
            )
        if name == "no_account":
            return await self.call("settle", self.rid(r), "acct_missing", 1, **settle_kw)
        if name == "release":
            return await self.call("release", self.rid(r))
        if name == "progress":
            batch = [
                (self.rid((r + i) % 13), f"g{i}" if i % 2 else None, n + i) for i in range(arg)
            ]
            batch += batch[:1]  # a request id given twice
            return await self.call("progress_many", batch, now + 60_000)
        assert name == "credit"
        return ledger.credit(self.conn, self.account_id, arg, request_id=f"{self.prefix}c{n}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, start=st.integers(0, 20_000))
def test_async_statements_match_the_sync_ledger(
    pg: tuple[str, Conn], ops: list[tuple[str, int, Any]], start: int
) -> None:
    """The same operations on two accounts of one database, one through :mod:`ledger` and one
    through :mod:`pg_ledger`: every result and every row (holds, ledger, balance) is equal."""
    url, conn = pg

    async def main() -> None:
        aconn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            tag = f"t{time.monotonic_ns()}"
            sync = _Side(conn, aconn, f"{tag}s", start, use_async=False)
            asyn = _Side(conn, aconn, f"{tag}a", start, use_async=True)
            for n, op in enumerate(ops):
                expected = await sync.apply(n, op)
                got = await asyn.apply(n, op)
                assert got == expected, (n, op)
                assert _table_state(
                    conn, asyn.account_id, asyn.key_id, asyn.prefix
                ) == _table_state(conn, sync.account_id, sync.key_id, sync.prefix), (n, op)
        finally:
            await aconn.close()

    asyncio.run(main())


def test_runner_dispatches_the_chat_path_to_async_statements(pg: tuple[str, Conn]) -> None:
    url, conn = pg
    acct = accounts.create_account(conn, "d@example.com", credits_micros=10_000)
    _, key = accounts.create_key(conn, acct.id)
    kh = accounts.hash_key(key)
    assert pg_ledger.implementation(ledger.admit, {"ttl_ms": 1}) is pg_ledger.admit
    # an argument the async version does not know: the synchronous code runs it
    assert pg_ledger.implementation(ledger.settle, {"unknown": 1}) is None
    assert pg_ledger.implementation(ledger.credit, {}) is None

    async def main() -> None:
        runner = DbRunner(Database(url), pool_size=2)
        assert runner.batcher is not None
        runner.batcher.sync_when_idle = False  # every call through the barrier (see pg_batch)
        try:
            assert runner.completes_on_cancel
            res = await runner.run(ledger.admit, kh, "r1", 4_000, ttl_ms=60_000)
            assert res.status == "ok" and res.available_micros == 6_000
            # admit commits asynchronously; the call returned after a flush made it durable
            assert runner.pg is not None and runner.pg.opened == 1 and runner.pg.flushes == 1
            s = await runner.run(ledger.settle, "r1", acct.id, 500, overdraft_limit_micros=L)
            assert (s.charged_micros, s.balance_micros, s.duplicate) == (500, 9_500, False)
            assert runner.pg.flushes == 2
            assert await runner.run(ledger.release, "r1") is False  # a synchronous commit
            assert runner.pg.flushes == 2
            # the thread path still serves everything else
            assert await runner.run(ledger.credit, acct.id, 1, request_id="c1") == 9_501
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())


def _backend_gone(pid: int) -> bool:
    with psycopg.connect(_base_url(), autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return int(row.fetchone()[0]) == 0  # type: ignore[index]


def _base_url() -> str:
    from tests.gateway.conftest import PG_BASE

    return PG_BASE


def test_a_connection_killed_while_idle_is_replaced_before_use(pg: tuple[str, Conn]) -> None:
    url, conn = pg
    acct = accounts.create_account(conn, "k@example.com", credits_micros=10_000)
    _, key = accounts.create_key(conn, acct.id)
    kh = accounts.hash_key(key)

    async def main() -> None:
        pool = PgPool(url, 1)
        try:
            assert (await pool.run(pg_ledger.admit, kh, "a", 100, ttl_ms=60_000)).status == "ok"
            pid = pool._idle[0].connection.info.backend_pid
            with psycopg.connect(_base_url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            while not _backend_gone(pid):
                await asyncio.sleep(0.01)
            # the dead connection is noticed before anything is sent; the call runs once
            assert (await pool.run(pg_ledger.admit, kh, "b", 100, ttl_ms=60_000)).status == "ok"
            assert pool.opened == 2
        finally:
            await pool.aclose()

    asyncio.run(main())
    with conn.read():
        assert conn.all("SELECT request_id FROM holds ORDER BY request_id") == [("a",), ("b",)]


def test_cancelled_admission_completes_and_its_hold_is_released(
    pg_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    """A request cancelled while its admission waits for the account row lock: the admission
    runs to completion (the hold is placed), then the request releases it; nothing leaks."""
    account_id, key = make_account(pg_url, "c@example.com", 1_000_000)
    app = create_app(settings_for(pg_url, fake[1]))
    body = json.dumps(chat_body()).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        async with app.starlette.router.lifespan_context(app.starlette):
            chat = app.chat_handler
            assert chat is not None
            locker = await psycopg.AsyncConnection.connect(pg_url)
            # autocommit: each look at pg_stat_activity is a fresh snapshot
            watcher = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
            try:
                await locker.execute(
                    "SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,)
                )
                task = asyncio.ensure_future(chat.run_chat(scope, receive, send, body))
                while True:  # the admission statement is waiting for the row lock
                    cur = await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE %s",
                        ("%dexto_admit%",),
                    )
                    row = await cur.fetchone()
                    if row and row[0]:
                        break
                    await asyncio.sleep(0.01)
                task.cancel()
                await asyncio.sleep(0.05)
                assert not task.done()  # still waiting for its admission to finish
                await locker.rollback()
                with pytest.raises(asyncio.CancelledError):
                    await task
            finally:
                await locker.close()
                await watcher.close()
            text = chat.state.metrics.render(None)
            assert "dexto_gateway_holds_released_total 1.0" in text.splitlines()
        assert sent == []

    asyncio.run(main())
    db = Database(pg_url)
    c = db.connect()
    try:
        with c.read():
            assert c.all("SELECT request_id FROM holds") == []
            assert c.all("SELECT request_id FROM ledger WHERE kind = 'charge'") == []
    finally:
        db.close_all()


def test_admit_and_settle_commit_without_waiting_for_the_flush(pg: tuple[str, Conn]) -> None:
    """The functions switch their own transaction to ``synchronous_commit = off`` (the row lock
    is released before the WAL flush; callers wait on the pool's barrier instead); the session
    setting is untouched."""
    url, conn = pg
    acct = accounts.create_account(conn, "s@example.com", credits_micros=10_000)
    _, key = accounts.create_key(conn, acct.id)
    with psycopg.connect(url) as c:
        session = c.execute("SHOW synchronous_commit").fetchone()
        c.rollback()
        c.execute(
            "SELECT * FROM dexto_admit(%s, 'r', 10, 1, 2, NULL, NULL)",
            (accounts.hash_key(key),),
        )
        assert c.execute("SHOW synchronous_commit").fetchone() == ("off",)
        c.rollback()
        c.execute(
            "SELECT * FROM dexto_settle('r', %s, 5, 0, NULL, NULL, NULL, 0::smallint, NULL,"
            " NULL, NULL, NULL, 1, NULL, NULL, NULL)",
            (acct.id,),
        )
        assert c.execute("SHOW synchronous_commit").fetchone() == ("off",)
        c.rollback()
        assert c.execute("SHOW synchronous_commit").fetchone() == session
