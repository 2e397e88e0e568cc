"""PostgreSQL: a request task cancelled while its database call waits (on a row lock another
connection of the test holds). Checked after the fact on the tables only, so the tests hold
whatever runs the calls (a thread pool or an async driver):

* cancelled while its settlement waits: the request is charged exactly once;
* cancelled while its admission waits: no hold is left behind and nothing is charged;
* a stream whose delivery record waits on the lock is relayed anyway after ``RECORD_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _gwhelpers import make_account, settings_for, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.app import GatewayApp, create_app
from tests.gateway.test_gw_crash_recovery import (
    Stream,
    _balance_matches_ledger,
    _charges,
    _holds,
    _rows,
    _wait_for,
    own_pg_db,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def _running(app: GatewayApp) -> AsyncIterator[None]:
    """The app's lifespan, driven on this loop (startup, then shutdown with its drain)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


def _request(app: GatewayApp, key: str, fake: dict[str, Any]) -> asyncio.Future[None]:
    body = json.dumps(
        {
            "model": "fake/cheap",
            "messages": [{"role": "user", "content": f"cancel {uuid.uuid4().hex}"}],
            "fake": fake,
        }
    ).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        return None

    assert app.chat_handler is not None
    return asyncio.ensure_future(app.chat_handler(scope, receive, send))


class _RowLock:
    """Another connection holding ``SELECT … FOR UPDATE`` on the account row."""

    def __init__(self, db_url: str, account_id: str) -> None:
        import psycopg

        self.conn = psycopg.connect(db_url)
        self.conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,))

    def release(self) -> None:
        self.conn.commit()
        self.conn.close()


def _lock_waiters(db_url: str, name: str) -> int:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


async def _until(cond: Callable[[], bool], what: str) -> None:
    for _ in range(600):
        if await asyncio.to_thread(cond):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _scenario(
    db_url: str, name: str, upstream: str, tmp: Path, *, during: str
) -> tuple[str, list[str]]:
    """Run one request, cancel it while its admission or settlement waits on the row lock;
    returns (account id, the request ids whose hold was seen)."""
    account_id, key = make_account(db_url, f"{during}@example.com", 10_000_000)
    app = create_app(settings_for(db_url, upstream, spool_dir=str(tmp / "spool"), db_pool_size=3))
    seen: list[str] = []

    def hold_ids() -> list[str]:
        from tests.gateway.test_gw_crash_recovery import _rows

        rows = _rows(db_url, "SELECT request_id FROM holds WHERE request_id NOT LIKE 'rsv-%'")
        return [str(r[0]) for r in rows]  # the request's own hold (not a worker reservation)

    async def main() -> None:
        async with _running(app):
            lock: _RowLock | None = None
            if during == "admission":
                lock = await asyncio.to_thread(_RowLock, db_url, account_id)
            task = _request(app, key, {"latency_ms": 1000})
            if during == "settlement":
                await _until(lambda: bool(hold_ids()), "the hold")
                seen.extend(await asyncio.to_thread(hold_ids))
                lock = await asyncio.to_thread(_RowLock, db_url, account_id)
            assert lock is not None
            await _until(lambda: _lock_waiters(db_url, name) >= 1, f"the {during} to wait")
            task.cancel()
            await asyncio.sleep(0.3)  # whatever the cancellation does, it does it now
            await asyncio.to_thread(lock.release)
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    return account_id, seen


def test_settlement_cut_by_a_cancel_is_charged_exactly_once(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    db_url, name = own_pg_db
    account_id, seen = _scenario(db_url, name, fake[1], tmp_path, during="settlement")
    (rid,) = seen
    charges = _charges(db_url)
    assert list(charges) == [rid]
    amount, estimated, _, _ = charges[rid]
    assert amount > 0 and estimated == 0
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, account_id)


def test_cancel_during_admission_leaves_no_hold(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    db_url, name = own_pg_db
    account_id, _ = _scenario(db_url, name, fake[1], tmp_path, during="admission")
    assert _holds(db_url) == 0
    assert _charges(db_url) == {}
    _balance_matches_ledger(db_url, account_id)


def test_a_stalled_delivery_record_does_not_stall_the_stream(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hold row is locked by another connection when the first chunk arrives: the delivery
    record waits, and after ``RECORD_WAIT_S`` the stream is relayed anyway; it is charged once
    the lock goes."""
    import psycopg

    from dexto.gateway import settlement

    monkeypatch.setattr(settlement, "RECORD_WAIT_S", 0.5)
    db_url, _ = own_pg_db
    with start_gateway(
        db_url, fake[1], credits_micros=10_000_000, spool_dir=str(tmp_path / "spool")
    ) as gw:
        s = Stream(gw.url, gw.key, 0, {"latency_ms": 1000, "chunks": 5})
        s.start()
        _wait_for(lambda: _holds(db_url) == 1, "the hold")
        with psycopg.connect(db_url) as lock:
            lock.execute("SELECT 1 FROM holds FOR UPDATE")
            assert s.started.wait(30)  # 3 content chunks relayed while the record waits
            assert s.error is None and _charges(db_url) == {}
            lock.commit()
        s.join(60)
        assert s.error is None and s.text.endswith(b"data: [DONE]\n\n")
        _wait_for(lambda: s.request_id in _charges(db_url), "the settlement")
    amount, estimated, _, _ = _charges(db_url)[s.request_id]
    assert estimated == 0 and amount == round(s.usage_cost() * 1_000_000)
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, gw.account_id)


def test_a_delivery_record_queued_behind_a_stalled_one_does_not_wait_for_it(
    own_pg_db: tuple[str, str],  # noqa: F811 - the fixture imported above
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stream A's delivery record waits on a row lock; stream B's first output comes while A's
    write is still in flight, so B's record is queued behind it. B is relayed ``RECORD_WAIT_S``
    after its record was queued, while A's lock is still held (its delivery spooled); both
    records land and both streams are charged once after the lock goes."""
    import psycopg

    from dexto.gateway import settlement

    monkeypatch.setattr(settlement, "RECORD_WAIT_S", 1.0)
    db_url, _ = own_pg_db
    with start_gateway(
        db_url, fake[1], credits_micros=10_000_000, spool_dir=str(tmp_path / "spool")
    ) as gw:
        # A streams on for ~8 s: its settlement (which would wait on the same lock, and with
        # it the ledger statements queued behind it) comes after the lock is gone
        a = Stream(gw.url, gw.key, 0, {"latency_ms": 1000, "chunks": 400, "chunk_delay_ms": 20})
        a.start()
        _wait_for(lambda: _holds(db_url) == 1, "A's hold")
        with psycopg.connect(db_url) as lock:
            lock.execute("SELECT 1 FROM holds FOR UPDATE")  # A's hold row only
            assert a.started.wait(30)  # A relayed: its record timed out, its write still waits
            b = Stream(gw.url, gw.key, 1, {"chunks": 5})
            b.start()
            relayed = b.started.wait(10)
            delivered = _rows(db_url, "SELECT request_id, delivered FROM holds")
            lock.commit()
        assert relayed, "B waited for A's stalled record"
        assert (a.request_id, 0) in delivered  # A's record was still waiting when B relayed
        for s in (a, b):
            s.join(60)
            assert s.error is None and s.text.endswith(b"data: [DONE]\n\n")
        ids = {a.request_id, b.request_id}
        _wait_for(lambda: ids <= set(_charges(db_url)), "the settlements")
    charges = _charges(db_url)
    for s in (a, b):
        amount, estimated, _, _ = charges[s.request_id]
        assert estimated == 0 and amount == round(s.usage_cost() * 1_000_000)
    assert _holds(db_url) == 0
    _balance_matches_ledger(db_url, gw.account_id)
