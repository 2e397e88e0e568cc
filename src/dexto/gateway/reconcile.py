"""The reconciliation report: where estimates were used, what was written off, which holds the
sweeper settled or released — with totals, so an operator can check every estimated cent."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dexto.errors import ConfigError
from dexto.gateway.db import Conn
from dexto.gateway.ledger import now_ms
from dexto.gateway.money import format_usd
from dexto.gateway.usage import iso_ms

__all__ = ["parse_since", "reconcile_report"]

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_since(text: str | None, *, now: int | None = None) -> int | None:
    """``--since``: an ISO date/time (UTC if no zone) or a relative age (``90m``, ``24h``,
    ``7d``) → epoch milliseconds; None for no lower bound."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    m = _RELATIVE.match(raw.lower())
    if m:
        return (now_ms() if now is None else now) - int(m.group(1)) * _UNIT_MS[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {raw!r} is neither a date/time nor an age",
            field="since",
            fix="Use an ISO date or time (2026-01-31, 2026-01-31T12:00Z) or an age (24h, 7d).",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def reconcile_report(conn: Conn, since_ms: int | None = None) -> dict[str, Any]:
    since = since_ms if since_ms is not None else 0
    with conn.read():
        estimated = conn.all(
            "SELECT created_at, request_id, account_id, model, -amount_micros, cost_micros,"
            " estimate_reason, settled_by FROM ledger WHERE kind = 'charge' AND estimated = 1"
            " AND created_at >= ? ORDER BY created_at, id",
            (since,),
        )
        written = conn.all(
            "SELECT created_at, request_id, account_id, cost_micros, -amount_micros,"
            " written_off_micros FROM ledger WHERE kind = 'charge' AND written_off_micros > 0"
            " AND created_at >= ? ORDER BY created_at, id",
            (since,),
        )
        swept = conn.all(
            "SELECT s.created_at, s.request_id, s.account_id, s.action, s.amount_micros,"
            " s.reason, COALESCE(-l.amount_micros, 0) FROM swept_holds s"
            " LEFT JOIN ledger l ON l.request_id = s.request_id"
            " WHERE s.created_at >= ? ORDER BY s.created_at, s.request_id",
            (since,),
        )
    by_reason: dict[str, dict[str, Any]] = {}
    for r in estimated:
        slot = by_reason.setdefault(str(r[6] or "unknown"), {"count": 0, "micros": 0})
        slot["count"] += 1
        slot["micros"] += int(r[4])
    settled = [r for r in swept if r[3] == "settled"]
    released = [r for r in swept if r[3] == "released"]
    return {
        "since": iso_ms(since_ms) if since_ms is not None else None,
        "estimatedCharges": [
            {
                "ts": iso_ms(int(r[0])),
                "requestId": r[1],
                "accountId": r[2],
                "model": r[3],
                "chargedUsd": format_usd(int(r[4])),
                "costUsd": format_usd(int(r[5])),
                "reason": r[6],
                "settledBy": r[7] or "request",
            }
            for r in estimated
        ],
        "writtenOff": [
            {
                "ts": iso_ms(int(r[0])),
                "requestId": r[1],
                "accountId": r[2],
                "costUsd": format_usd(int(r[3])),
                "chargedUsd": format_usd(int(r[4])),
                "writtenOffUsd": format_usd(int(r[5])),
            }
            for r in written
        ],
        "sweptHolds": [
            {
                "ts": iso_ms(int(r[0])),
                "requestId": r[1],
                "accountId": r[2],
                "action": r[3],
                "holdUsd": format_usd(int(r[4])),
                "chargedUsd": format_usd(int(r[6])),
                "reason": r[5],
            }
            for r in swept
        ],
        "totals": {
            "estimatedCount": len(estimated),
            "estimatedUsd": format_usd(sum(int(r[4]) for r in estimated)),
            "estimatedByReason": {
                k: {"count": v["count"], "usd": format_usd(v["micros"])}
                for k, v in sorted(by_reason.items())
            },
            "writtenOffCount": len(written),
            "writtenOffUsd": format_usd(sum(int(r[5]) for r in written)),
            "sweptSettledCount": len(settled),
            "sweptSettledUsd": format_usd(sum(int(r[6]) for r in settled)),
            "sweptReleasedCount": len(released),
            "sweptReleasedHoldUsd": format_usd(sum(int(r[4]) for r in released)),
        },
    }
