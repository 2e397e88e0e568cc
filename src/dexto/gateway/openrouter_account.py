"""OpenRouter-shaped ``/api/v1/credits`` and ``/api/v1/key``, answered from the Dexto ledger.

Amounts are USD numbers (OpenRouter's shape), computed from integer micro-USD.
Dexto keys share their account's prepaid balance, so for ``/key``: ``limit`` is the credits
granted to the account, ``usage`` what the account was charged, ``limit_remaining`` the balance.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dexto.gateway.db import Conn
from dexto.gateway.money import MICROS_PER_USD
from dexto.gateway.usage import month_start_ms

__all__ = ["credits_doc", "key_doc"]


def _usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def _totals(conn: Conn, account_id: str, *since_ms: int) -> tuple[int, int, list[int]]:
    """(credits, charged in total, charged since each of ``since_ms``) in micro-USD, in one
    pass over the account's ledger."""
    charged = "COALESCE(SUM(CASE WHEN kind = 'charge'{} THEN -amount_micros ELSE 0 END), 0)"
    row = conn.one(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'credit' THEN amount_micros ELSE 0 END), 0), "
        + ", ".join([charged.format("")] + [charged.format(" AND created_at >= ?")] * len(since_ms))
        + " FROM ledger WHERE account_id = ?",
        (*since_ms, account_id),
    )
    assert row is not None
    return int(row[0]), int(row[1]), [int(v) for v in row[2:]]


def credits_doc(conn: Conn, account_id: str) -> dict[str, Any]:
    """``{"data": {"total_credits", "total_usage"}}`` for the account."""
    with conn.read():
        credits, used, _ = _totals(conn, account_id)
    return {"data": {"total_credits": _usd(credits), "total_usage": _usd(used)}}


def key_doc(conn: Conn, key_hash: str, rate: tuple[float, float]) -> dict[str, Any] | None:
    """The ``GET /api/v1/key`` document for an active key, else None."""
    now = dt.datetime.now(dt.UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - dt.timedelta(days=day.weekday())
    with conn.read():
        row = conn.one(
            "SELECT k.account_id, k.prefix, a.balance_micros FROM api_keys k"
            " JOIN accounts a ON a.id = k.account_id"
            " WHERE k.key_hash = ? AND k.revoked_at IS NULL",
            (key_hash,),
        )
        if row is None:
            return None
        account_id, prefix, balance = str(row[0]), str(row[1]), int(row[2])
        credits, used, (month, daily, weekly) = _totals(
            conn,
            account_id,
            month_start_ms(now),
            int(day.timestamp() * 1000),
            int(week.timestamp() * 1000),
        )
    rps, burst = rate
    return {
        "data": {
            "label": prefix,
            "limit": _usd(credits),
            "limit_remaining": _usd(balance),
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": _usd(used),
            "usage_daily": _usd(daily),
            "usage_weekly": _usd(weekly),
            "usage_monthly": _usd(month),
            "byok_usage": 0.0,
            "byok_usage_daily": 0.0,
            "byok_usage_weekly": 0.0,
            "byok_usage_monthly": 0.0,
            "is_free_tier": credits == 0,
            "is_provisioning_key": False,
            "is_management_key": False,
            "expires_at": None,
            "rate_limit": {
                "requests": int(burst) if rps > 0 else -1,
                "interval": f"{burst / rps:g}s" if rps > 0 else "unlimited",
                "note": "Per-key token bucket: a burst of `requests`, refilled over `interval`.",
            },
        }
    }
