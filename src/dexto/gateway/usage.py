"""Account usage: balance, month-to-date cost and requests, recent ledger entries (exact shape)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dexto.gateway.db import Conn
from dexto.gateway.money import format_usd

__all__ = ["account_for_key", "iso_ms", "month_start_ms", "usage_report"]


def iso_ms(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def month_start_ms(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000)


def account_for_key(conn: Conn, key_hash: str) -> str | None:
    with conn.read():
        row = conn.one(
            "SELECT account_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
    return None if row is None else str(row[0])


def usage_report(conn: Conn, account_id: str, *, recent: int = 20) -> dict[str, Any] | None:
    """The ``GET /me/usage`` document, or None if the account does not exist."""
    with conn.read():
        acct = conn.one(
            "SELECT id, email, balance_micros FROM accounts WHERE id = ?", (account_id,)
        )
        if acct is None:
            return None
        mtd = conn.one(
            "SELECT COALESCE(SUM(-amount_micros), 0), COUNT(*) FROM ledger"
            " WHERE account_id = ? AND kind = 'charge' AND created_at >= ?",
            (account_id, month_start_ms()),
        )
        rows = conn.all(
            "SELECT created_at, request_id, model, amount_micros, prompt_tokens,"
            " completion_tokens, session_id, source FROM ledger"
            " WHERE account_id = ? AND kind = 'charge' ORDER BY created_at DESC, id DESC LIMIT ?",
            (account_id, recent),
        )
    assert mtd is not None
    return {
        "account": {"id": acct[0], "email": acct[1]},
        "balanceUsd": format_usd(int(acct[2])),
        "mtd": {"costUsd": format_usd(int(mtd[0])), "requests": int(mtd[1])},
        "recent": [
            {
                "ts": iso_ms(int(r[0])),
                "requestId": r[1],
                "model": r[2],
                "costUsd": format_usd(-int(r[3])),
                "promptTokens": r[4],
                "completionTokens": r[5],
                "sessionId": r[6],
                "source": r[7],
            }
            for r in rows
        ],
    }
