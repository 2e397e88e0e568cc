"""A settlement that finds its request already settled reports the charge the ledger recorded.

That happens when an earlier attempt landed without the worker getting its outcome (on
PostgreSQL: the settle statement committed, then its WAL flush barrier failed, and the retry is
a duplicate). The client's ``usage.cost`` / ``X-Dexto-Cost`` and the request log come from the
result, so it must be the recorded charge, not the empty result of the repeat.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from _gwhelpers import make_account, settings_for

from dexto.gateway import ledger
from dexto.gateway.app import create_app
from dexto.gateway.db import Database
from dexto.gateway.proxy import RequestContext
from tests.gateway.test_gw_cancel_pg import _running


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_repeated_settle_reports_the_recorded_charge(
    request: pytest.FixtureRequest, sqlite_url: str, fake: tuple[object, str], dialect: str
) -> None:
    db_url = sqlite_url if dialect == "sqlite" else request.getfixturevalue("pg_url")
    account_id, _ = make_account(db_url, "report@example.com", 1_000_000)
    # The attempt whose outcome the worker did not get: it landed (a debit and a write-off).
    db = Database(db_url)
    try:
        first = ledger.settle(
            db.connect(), "req-lost", account_id, 1_700_000, overdraft_limit_micros=500_000
        )
    finally:
        db.close_all()
    assert (first.charged_micros, first.written_off_micros) == (1_500_000, 200_000)

    app = create_app(settings_for(db_url, fake[1]))

    async def main() -> ledger.SettleResult:
        async with _running(app):
            handler = app.chat_handler
            assert handler is not None
            ctx = RequestContext(
                request_id="req-lost",
                started=time.perf_counter(),
                model="fake/cheap",
                account_id=account_id,
                balance=1_000_000,
            )
            return await handler.settle(ctx, 1_700_000, 10, 20, estimated=False)

    again = asyncio.run(main())
    assert again.duplicate
    assert (again.charged_micros, again.written_off_micros) == (1_500_000, 200_000)
    assert again.balance_micros == -500_000
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.read():
            rows = conn.all("SELECT amount_micros FROM ledger WHERE request_id = 'req-lost'")
            balance = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
    finally:
        db.close_all()
    assert rows == [(-1_500_000,)]  # charged once
    assert balance == (-500_000,)
