"""Group commit of admissions and settlements on PostgreSQL (schema v6's dexto_step_many,
pg_batch, the runner's dispatch): a batch gives the results and rows of the same calls made one
after another, its settlements then its admissions; batches of two connections over
overlapping accounts never deadlock and keep the ledger exact; a batch that fails is run again
item by item; a cancelled caller waits for its batch; a batch cut by a lost connection fails
every caller as unavailable."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.gateway import accounts, ledger, pg_ledger
from dexto.gateway.db import Conn, Database, DatabaseUnavailable
from dexto.gateway.migrations import migrate
from dexto.gateway.runner import DbRunner
from tests.gateway.conftest import PG_BASE

pytestmark = pytest.mark.postgres

L = 5_000  # overdraft limit used here
T0 = 1_700_000_000_000


def _new_schema() -> str:
    schema = f"dexto_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def _schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def two_schemas() -> Iterator[tuple[tuple[str, Conn], tuple[str, Conn]]]:
    """Two fresh, migrated schemas: (URL, connection) each; dropped afterwards."""
    from tests.gateway.conftest import _need, _pg_problem

    _need(_pg_problem())
    schemas = [_new_schema(), _new_schema()]
    dbs = [Database(_schema_url(s)) for s in schemas]
    try:
        for db in dbs:
            migrate(db)
        yield (dbs[0].url, dbs[0].connect()), (dbs[1].url, dbs[1].connect())
    finally:
        for db in dbs:
            db.close_all()
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            for s in schemas:
                conn.execute(f'DROP SCHEMA "{s}" CASCADE')


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[str, Conn]]:
    db = Database(pg_url)
    migrate(db)
    yield pg_url, db.connect()
    db.close_all()


class _Accounts:
    """A few funded accounts of one schema, each with a valid and a revoked key."""

    def __init__(self, conn: Conn, tag: str, credits: list[int]) -> None:
        self.tag = tag
        self.ids: list[str] = []
        self.keys: list[dict[str, str]] = []
        self.key_ids: list[str] = []
        for i, c in enumerate(credits):
            acct = accounts.create_account(conn, f"{tag}{i}@example.com", credits_micros=c)
            info, key = accounts.create_key(conn, acct.id)
            revoked, old = accounts.create_key(conn, acct.id)
            accounts.revoke_key(conn, revoked["id"])
            self.ids.append(acct.id)
            self.key_ids.append(info["id"])
            self.keys.append({"ok": accounts.hash_key(key), "old": accounts.hash_key(old)})

    def norm(self, value: Any) -> Any:
        if value in self.ids:
            return f"A{self.ids.index(value)}"
        if value in self.key_ids:
            return f"K{self.key_ids.index(value)}"
        if isinstance(value, str) and value.startswith(self.tag):
            return value[len(self.tag) :]
        return value

    def state(self, conn: Conn) -> dict[str, Any]:
        marks = ", ".join("?" for _ in self.ids)
        with conn.read():
            bal = conn.all(
                f"SELECT id, balance_micros FROM accounts WHERE id IN ({marks})", self.ids
            )
            holds = conn.all(
                "SELECT request_id, account_id, amount_micros, created_at, expires_at, model,"
                f" key_id, prompt_tokens FROM holds WHERE account_id IN ({marks})"
                " ORDER BY request_id",
                self.ids,
            )
            rows = conn.all(
                "SELECT request_id, account_id, kind, amount_micros, cost_micros,"
                " written_off_micros, hold_micros, estimated, model, prompt_tokens,"
                " completion_tokens, key_id, session_id, source, client_version, created_at,"
                f" estimate_reason, settled_by FROM ledger WHERE account_id IN ({marks})"
                " AND kind = 'charge' ORDER BY id",
                self.ids,
            )
        return {
            "balances": sorted((self.norm(a), int(b)) for a, b in bal),
            "holds": [tuple(self.norm(v) for v in r) for r in holds],
            "ledger": [tuple(self.norm(v) for v in r) for r in rows],
        }


_admit_item = st.tuples(
    st.just("admit"),
    st.integers(0, 2),  # account
    st.sampled_from(["ok", "ok", "old", "bad"]),
    st.integers(0, 4_000),  # hold
    # ttl (ms): "next" expires exactly at the ``now`` of the account's next admission with a
    # valid key (5 if there is none), 10 or 20 at the next item's or the one after (items are
    # 10 ms apart), 5 between two items, 60_000 never within the test
    st.sampled_from(["next", "next", 10, 20, 5, 60_000]),
)
_settle_item = st.tuples(
    st.just("settle"),
    st.integers(0, 3),  # account (3: no such account)
    # whose request id: item r's (0..14), or ("back", k) the k-th last admission with a valid key
    # in an earlier batch (its hold can still be open)
    st.one_of(st.integers(0, 14), st.tuples(st.just("back"), st.sampled_from([1, 1, 2, 3]))),
    st.one_of(st.integers(-10, 9_000), st.just(10**18)),  # cost
    # the sweeper's settle: expired_before = now, or "hold": exactly when the request's hold
    # expires (now if that item is no admission)
    st.sampled_from([None, "now", "hold", "hold", "hold"]),
)
_batches = st.lists(
    st.one_of(
        st.lists(_admit_item, min_size=1, max_size=6),
        st.lists(_settle_item, min_size=1, max_size=6),
        st.lists(st.one_of(_admit_item, _settle_item), min_size=1, max_size=8),
    ),
    max_size=8,
)


def _ttl(items: list[tuple[Any, ...]], n: int) -> int:
    """Item ``n``'s (an admission's) ttl in ms, "next" resolved against the later items."""
    _, a, _, _, ttl = items[n]
    if ttl != "next":
        return int(ttl)
    later = (m for m in range(n + 1, len(items)) if items[m][:3] == ("admit", a, "ok"))
    return 10 * (next(later, n) - n) or 5


def _params(
    acc: _Accounts, items: list[tuple[Any, ...]], n: int, first: int
) -> tuple[str, pg_ledger.Params]:
    """Item ``n`` of ``items`` (its batch starts at item ``first``) as the arguments of its
    single-item function."""
    item = items[n]
    now = T0 + n * 10
    if item[0] == "admit":
        _, a, kind, hold, _ = item
        ttl = _ttl(items, n)
        key = acc.keys[a][kind] if kind != "bad" else "0" * 64
        return "admit", pg_ledger.admit_params(
            key, f"{acc.tag}r{n}", hold, ttl_ms=ttl, now=now, model="m", prompt_tokens=n,
        )  # fmt: skip
    _, a, ref, cost, sweep = item
    r = ref
    if isinstance(ref, tuple):
        earlier = [m for m in range(first) if items[m][0] == "admit" and items[m][2] == "ok"]
        r = earlier[-ref[1]] if len(earlier) >= ref[1] else n
    expired_before = None if sweep is None else now
    if sweep == "hold" and r < len(items) and items[r][0] == "admit":
        expired_before = T0 + r * 10 + _ttl(items, r)
    account = acc.ids[a] if a < len(acc.ids) else "acct_missing"
    return "settle", pg_ledger.settle_params(
        f"{acc.tag}r{r}", account, cost, overdraft_limit_micros=L, model="m", prompt_tokens=n,
        completion_tokens=r, estimated=bool(n % 2), key_id=acc.key_ids[0], session_id="s",
        client_version="1", now=now, estimate_reason="no_usage",
        settled_by="sweeper" if sweep else None, expired_before=expired_before,
    )  # fmt: skip


def _outcome(acc: _Accounts, result: Any) -> Any:
    if isinstance(result, LookupError):
        return ("LookupError",)
    if isinstance(result, ledger.AdmitResult):
        return (result.status, acc.norm(result.account_id), acc.norm(result.key_id),
                result.balance_micros, result.available_micros)  # fmt: skip
    return result


# credits: often enough for several holds, so that holds exist to expire at the boundaries
_credits = st.one_of(st.integers(0, 12_000), st.integers(8_000, 12_000))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=_batches, credits=st.lists(_credits, min_size=3, max_size=3))
def test_a_batch_matches_the_same_calls_one_after_another(
    two_schemas: tuple[tuple[str, Conn], tuple[str, Conn]],
    batches: list[list[tuple[Any, ...]]],
    credits: list[int],
) -> None:
    """The same batches (admissions, settlements, or both mixed) on two fresh schemas: one runs
    every item with the single-item function, one call at a time, the batch's settlements first,
    then its admissions (each kind in batch order); the other runs each batch as one
    ``step_many`` statement. Every outcome and every row (holds, charges, balances) is equal.
    Holds often expire exactly at a later admission's ``now`` or at a sweeper settle's
    ``expired_before`` (the boundaries of "held" and "expired")."""
    (url_a, conn_a), (url_b, conn_b) = two_schemas
    tag = f"t{uuid.uuid4().hex[:8]}"
    seq, bat = _Accounts(conn_a, tag, credits), _Accounts(conn_b, tag, credits)
    flat = [item for batch in batches for item in batch]
    numbered: list[list[tuple[int, tuple[Any, ...]]]] = []
    first: dict[int, int] = {}
    n = 0
    for batch in batches:
        numbered.append([(n + i, item) for i, item in enumerate(batch)])
        first.update((n + i, n) for i in range(len(batch)))
        n += len(batch)

    async def main() -> None:
        ca = await psycopg.AsyncConnection.connect(url_a, autocommit=True)
        cb = await psycopg.AsyncConnection.connect(url_b, autocommit=True)
        try:
            for batch in numbered:
                # the order step_many runs them in: settlements, then admissions
                batch = [b for b in batch if b[1][0] == "settle"] + [
                    b for b in batch if b[1][0] == "admit"
                ]
                expected = []
                for i, _ in batch:
                    kind, params = _params(seq, flat, i, first[i])
                    one = pg_ledger.admit_one if kind == "admit" else pg_ledger.settle_one
                    try:
                        expected.append(_outcome(seq, await one(ca.cursor(), params)))
                    except LookupError as exc:
                        expected.append(_outcome(seq, exc))
                items = [_params(bat, flat, i, first[i]) for i, _ in batch]
                settled, admitted = await pg_ledger.step_many(
                    cb.cursor(),
                    [p for kind, p in items if kind == "settle"],
                    [p for kind, p in items if kind == "admit"],
                )
                got = [_outcome(bat, r) for r in (*settled, *admitted)]
                assert got == expected, batch
                assert bat.state(conn_b) == seq.state(conn_a), batch
        finally:
            await ca.close()
            await cb.close()

    asyncio.run(main())


def test_concurrent_batches_over_overlapping_accounts_keep_the_ledger_exact(
    pg: tuple[str, Conn],
) -> None:
    """Two threads, each with its own event loop and connection, run batches whose items name
    shared accounts in random orders: first admissions only, then batches of admissions and
    batches of settlements and admissions together. No deadlock (nor any other error); after
    the first phase the holds of each account never exceed its balance (the overdraft bound of
    admission) and some were refused; at the end every balance equals its ledger sum and none
    is below the overdraft limit."""
    url, conn = pg
    acc = _Accounts(conn, f"c{uuid.uuid4().hex[:6]}", [40_000] * 4)
    errors: list[BaseException] = []
    placed: dict[int, list[tuple[str, int]]] = {1: [], 2: []}
    refused: list[int] = []

    async def hammer(seed: int, mixed: bool) -> None:
        rng = random.Random(seed * 10 + mixed)
        aconn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        mine = placed[seed]
        try:
            for b in range(30):
                items = [
                    pg_ledger.admit_params(
                        acc.keys[a]["ok"],
                        f"w{seed}-{mixed}-{b}-{i}",
                        rng.randint(500, 3_000),
                        ttl_ms=600_000,
                    )  # fmt: skip
                    for i, a in enumerate(rng.choices(range(4), k=rng.randint(2, 8)))
                ]
                settles: list[pg_ledger.Params] = []
                if mixed and b % 2 == 1 and mine:
                    rng.shuffle(mine)
                    k = rng.randint(1, 8)
                    done, mine[:] = mine[:k], mine[k:]
                    settles = [
                        pg_ledger.settle_params(
                            rid, acc.ids[a], rng.randint(0, 4_000), overdraft_limit_micros=L
                        )  # fmt: skip
                        for rid, a in done
                    ]
                settled, admitted = await pg_ledger.step_many(aconn.cursor(), settles, items)
                for sres in settled:
                    assert isinstance(sres, ledger.SettleResult) and not sres.duplicate
                for item, res in zip(items, admitted, strict=True):
                    assert isinstance(res, ledger.AdmitResult)
                    if res.status == "ok":
                        mine.append((item[1], acc.ids.index(res.account_id)))
                    else:
                        assert res.status == "insufficient"
                        refused.append(1)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            await aconn.close()

    def both(mixed: bool) -> list[tuple[int, int, int]]:
        threads = [threading.Thread(target=asyncio.run, args=(hammer(s, mixed),)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        out = []
        with conn.read():
            for account_id in acc.ids:
                row = conn.one(
                    "SELECT a.balance_micros,"
                    " (SELECT SUM(amount_micros) FROM ledger l WHERE l.account_id = a.id),"
                    " (SELECT COALESCE(SUM(amount_micros), 0) FROM holds h"
                    "   WHERE h.account_id = a.id)"
                    " FROM accounts a WHERE a.id = ?",
                    (account_id,),
                )
                assert row is not None
                out.append((int(row[0]), int(row[1]), int(row[2])))
        return out

    for balance, total, held in both(mixed=False):
        assert balance == total == 40_000 and held <= balance
    assert refused
    for balance, total, _ in both(mixed=True):
        assert balance == total and balance >= -L


async def _runner(url: str) -> DbRunner:
    runner = DbRunner(Database(url), pool_size=3)
    runner.probe_interval_s = 0.0
    return runner


def test_concurrent_calls_go_out_as_one_batch_and_one_flush(pg: tuple[str, Conn]) -> None:
    url, conn = pg
    acc = _Accounts(conn, "g", [1_000_000])

    async def main() -> None:
        runner = await _runner(url)
        try:
            got = await asyncio.gather(
                *(runner.run(ledger.admit, acc.keys[0]["ok"], f"g{i}", 10, ttl_ms=60_000)
                  for i in range(10))
            )  # fmt: skip
            assert [r.available_micros for r in got] == [
                1_000_000 - 10 * (i + 1) for i in range(10)
            ]
            b = runner.batcher
            assert b is not None and runner.pg is not None
            assert (b.statements, b.items, b.fallbacks, runner.pg.flushes) == (1, 10, 0, 1)
            b.max_batch = 4
            settled = await asyncio.gather(
                *(runner.run(ledger.settle, f"g{i}", acc.ids[0], 5, overdraft_limit_micros=0)
                  for i in range(10))
            )  # fmt: skip
            assert [s.balance_micros for s in settled] == [
                1_000_000 - 5 * (i + 1) for i in range(10)
            ]
            assert (b.statements, b.items) == (4, 20)  # 4 + 4 + 2 settlements
            b.max_batch = 64
            await asyncio.gather(
                *(runner.run(ledger.admit, acc.keys[0]["ok"], f"p{i}", 10, ttl_ms=60_000)
                  for i in range(5))
            )  # fmt: skip
            # settlements and admissions queued together: one statement, settlements first
            mixed = await asyncio.gather(
                *(
                    runner.run(ledger.settle, f"p{i}", acc.ids[0], 5, overdraft_limit_micros=0)
                    if i % 2 == 0
                    else runner.run(ledger.admit, acc.keys[0]["ok"], f"q{i}", 10, ttl_ms=60_000)
                    for i in range(10)
                )
            )
            assert (b.statements, b.items) == (6, 35)
            balance = 1_000_000 - 50 - 25
            assert [s.balance_micros for s in mixed[0::2]] == [
                balance + 20 - 5 * i for i in range(5)
            ]
            held = 10 * 2  # p1 and p3 were not settled
            assert [r.available_micros for r in mixed[1::2]] == [
                balance - held - 10 * (i + 1) for i in range(5)
            ]
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())


def test_a_failing_batch_is_run_again_item_by_item(pg: tuple[str, Conn]) -> None:
    """One admission reuses a request id (the hold's primary key): the batch statement fails and
    wrote nothing; run again one by one, only that caller gets the error."""
    url, conn = pg
    acc = _Accounts(conn, "f", [1_000_000])
    kh = acc.keys[0]["ok"]

    async def main() -> None:
        runner = await _runner(url)
        try:
            assert (await runner.run(ledger.admit, kh, "dup", 10, ttl_ms=60_000)).status == "ok"
            got = await asyncio.gather(
                *(
                    runner.run(ledger.admit, kh, rid, 10, ttl_ms=60_000)
                    for rid in ("a", "dup", "b")
                ),
                return_exceptions=True,
            )
            assert isinstance(got[1], psycopg.errors.UniqueViolation)
            assert [getattr(r, "status", None) for r in got] == ["ok", None, "ok"]
            assert runner.batcher is not None and runner.batcher.fallbacks == 1
            assert not runner.outage
        finally:
            await runner.aclose()
            runner.close()

    asyncio.run(main())
    with conn.read():
        rows = conn.all("SELECT request_id FROM holds ORDER BY request_id")
    assert rows == [("a",), ("b",), ("dup",)]


async def _batch_waiting(url: str) -> int:
    """The backend pid of the admission batch waiting for a row lock."""
    watcher = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        for _ in range(600):
            cur = await watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ("%dexto_step_many%",),
            )
            row = await cur.fetchone()
            if row:
                return int(row[0])
            await asyncio.sleep(0.01)
    finally:
        await watcher.close()
    raise AssertionError("the batch never waited for the lock")


def test_a_cancelled_caller_waits_for_its_batch(pg: tuple[str, Conn]) -> None:
    url, conn = pg
    acc = _Accounts(conn, "x", [1_000_000])
    kh = acc.keys[0]["ok"]

    async def main() -> None:
        runner = await _runner(url)
        locker = await psycopg.AsyncConnection.connect(url)
        try:
            await locker.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (acc.ids[0],))
            tasks = [
                asyncio.ensure_future(runner.run(ledger.admit, kh, f"x{i}", 10, ttl_ms=60_000))
                for i in range(3)
            ]
            await _batch_waiting(url)
            tasks[1].cancel()
            await asyncio.sleep(0.1)
            assert not tasks[1].done()  # still waiting for its batch
            await locker.rollback()
            with pytest.raises(asyncio.CancelledError):
                await tasks[1]
            assert [(await t).status for t in (tasks[0], tasks[2])] == ["ok", "ok"]
        finally:
            await locker.close()
            await runner.aclose()
            runner.close()

    asyncio.run(main())
    with conn.read():  # the cancelled caller's hold was placed: its outcome is known
        assert len(conn.all("SELECT request_id FROM holds")) == 3


def test_a_batch_cut_by_a_lost_connection_fails_every_caller_as_unavailable(
    pg: tuple[str, Conn],
) -> None:
    url, conn = pg
    acc = _Accounts(conn, "u", [1_000_000])
    kh = acc.keys[0]["ok"]

    async def main() -> None:
        runner = await _runner(url)
        locker = await psycopg.AsyncConnection.connect(url)
        try:
            await locker.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (acc.ids[0],))
            calls = asyncio.gather(
                *(runner.run(ledger.admit, kh, f"u{i}", 10, ttl_ms=60_000) for i in range(4)),
                return_exceptions=True,
            )
            pid = await _batch_waiting(url)
            with psycopg.connect(PG_BASE, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            got = await calls
            assert all(isinstance(r, DatabaseUnavailable) for r in got), got
            assert runner.outage and runner.batcher is not None
            assert runner.batcher.fallbacks == 0
            await locker.rollback()
            # the next call reconnects and closes the outage
            assert (await runner.run(ledger.admit, kh, "after", 10, ttl_ms=60_000)).status == "ok"
            assert not runner.outage
        finally:
            await locker.close()
            await runner.aclose()
            runner.close()

    asyncio.run(main())
    with conn.read():
        assert conn.all("SELECT request_id FROM holds") == [("after",)]
