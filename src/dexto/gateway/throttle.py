"""Login throttling for the device page, shared by every worker through the database.

* **Failures** are counted per account (by the email typed, so unknown emails are throttled the
  same way) and per client address, across all device codes. An attempt is counted *before* the
  password is checked (so concurrent guesses cannot overtake the count) and forgiven if it
  succeeds. After ``free`` failures within :data:`WINDOW_S` the subject is blocked for
  ``base · 2^(failures − free)`` seconds, at most :data:`MAX_BLOCK_S`; a blocked attempt is
  answered 429 + ``Retry-After`` without checking anything. With the defaults (5 free per
  account, base 30 s) at most 9 failures per account can be judged in any 15 minutes.
* **Nobody is locked out for good**: a block lasts at most :data:`MAX_BLOCK_S`, and the count
  starts again after :data:`WINDOW_S` without a failure.
* **Device codes** issued per address are limited to ``per_minute`` in a fixed 60 s window.
* The sweeper deletes expired device codes and throttle rows that no longer matter.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from typing import TYPE_CHECKING

from dexto.gateway.db import Conn, DatabaseUnavailable
from dexto.gateway.ledger import now_ms
from dexto.gateway.logs import log_event

if TYPE_CHECKING:
    from dexto.gateway.state import GatewayState

__all__ = [
    "ACCOUNT_FREE",
    "ADDRESS_FREE",
    "MAX_BLOCK_S",
    "WINDOW_S",
    "account_subject",
    "address_subject",
    "attempt",
    "backoff_s",
    "issue_code",
    "secret",
    "succeeded",
    "sweep",
    "sweeper",
]

WINDOW_S = 900
MAX_BLOCK_S = 900
ACCOUNT_FREE = 5
ADDRESS_FREE = 10
CODE_WINDOW_S = 60


def account_subject(email: str) -> str:
    return "acct:" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:40]


def address_subject(address: str) -> str:
    return "ip:" + address[:64]


def backoff_s(failures: int, free: int, base_s: float) -> float:
    """Seconds blocked after the ``failures``-th failure in a window (0 while under ``free``)."""
    if failures < free:
        return 0.0
    return float(min(MAX_BLOCK_S, base_s * 2 ** min(failures - free, 20)))


def _lock_row(conn: Conn, subject: str, now: int) -> tuple[int, int, int, int]:
    conn.execute(
        "INSERT INTO login_throttle (subject, failures, first_at, last_at, blocked_until)"
        " VALUES (?, 0, ?, 0, 0) ON CONFLICT (subject) DO NOTHING",
        (subject, now),
    )
    lock = " FOR UPDATE" if conn.dialect == "postgres" else ""
    row = conn.one(
        "SELECT failures, first_at, last_at, blocked_until FROM login_throttle"
        " WHERE subject = ?" + lock,
        (subject,),
    )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def attempt(
    conn: Conn, subjects: list[tuple[str, int]], base_s: float, *, now: int | None = None
) -> int:
    """Count one login attempt against each ``(subject, free)``; 0 = go ahead, else the seconds
    to wait (nothing is counted then)."""
    now = now_ms() if now is None else now
    ordered = sorted(subjects)  # one lock order for every transaction: no deadlocks
    with conn.write():
        rows = {s: _lock_row(conn, s, now) for s, _free in ordered}
        wait = max(blocked - now for _f, _first, _last, blocked in rows.values())
        if wait > 0:
            return max(1, math.ceil(wait / 1000))
        for subject, free in ordered:
            failures, first, last, _blocked = rows[subject]
            if now - last >= WINDOW_S * 1000:
                failures, first = 0, now
            failures += 1
            block = backoff_s(failures, free, base_s)
            conn.execute(
                "UPDATE login_throttle SET failures = ?, first_at = ?, last_at = ?,"
                " blocked_until = ? WHERE subject = ?",
                (failures, first, now, now + int(block * 1000) if block else 0, subject),
            )
    return 0


def succeeded(conn: Conn, account: str | None, address: str, address_free: int) -> None:
    """Forgive a successful attempt: the account (if given) starts afresh, the address takes
    back one."""
    with conn.write():
        if account is not None:
            conn.execute("DELETE FROM login_throttle WHERE subject = ?", (account,))
        row = conn.one("SELECT failures FROM login_throttle WHERE subject = ?", (address,))
        if row is not None:
            failures = max(0, int(row[0]) - 1)
            conn.execute(
                "UPDATE login_throttle SET failures = ?,"
                " blocked_until = CASE WHEN ? < ? THEN 0 ELSE blocked_until END"
                " WHERE subject = ?",
                (failures, failures, address_free, address),
            )


def issue_code(conn: Conn, address: str, per_minute: int, *, now: int | None = None) -> int:
    """Count one device code issued to ``address``: 0 = go ahead, else seconds to wait."""
    if per_minute <= 0:
        return 0
    now = now_ms() if now is None else now
    subject = "code:" + address[:64]
    with conn.write():
        count, first, _last, _blocked = _lock_row(conn, subject, now)
        if now - first >= CODE_WINDOW_S * 1000:
            count, first = 0, now
        if count >= per_minute:
            return max(1, math.ceil((first + CODE_WINDOW_S * 1000 - now) / 1000))
        conn.execute(
            "UPDATE login_throttle SET failures = ?, first_at = ?, last_at = ? WHERE subject = ?",
            (count + 1, first, now, subject),
        )
    return 0


def secret(conn: Conn, name: str) -> str:
    """A random secret shared by every worker (created on first use)."""
    with conn.write():
        conn.execute(
            "INSERT INTO gateway_secrets (name, value, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_hex(32), now_ms()),
        )
        row = conn.one("SELECT value FROM gateway_secrets WHERE name = ?", (name,))
    assert row is not None
    return str(row[0])


def sweep(conn: Conn, *, now: int | None = None) -> tuple[int, int]:
    """Delete expired device codes and throttle rows past their window and block."""
    now = now_ms() if now is None else now
    with conn.write():
        codes = conn.execute("DELETE FROM device_codes WHERE expires_at <= ?", (now,)).rowcount
        stale = now - max(WINDOW_S, CODE_WINDOW_S) * 1000
        rows = conn.execute(
            "DELETE FROM login_throttle"
            " WHERE last_at <= ? AND first_at <= ? AND blocked_until <= ?",
            (stale, stale, now),
        ).rowcount
    return int(codes or 0), int(rows or 0)


async def sweeper(state: GatewayState) -> None:
    """Background task: :func:`sweep` every ``sweep_interval_s``."""
    while True:
        await asyncio.sleep(state.settings.sweep_interval_s)
        try:
            codes, _rows = await state.runner.run(sweep)
        except DatabaseUnavailable:
            continue  # the runner logs the outage once
        except Exception as exc:  # noqa: BLE001 - keep sweeping after a transient DB error
            log_event(state.log, "login sweep failed", 30, error=type(exc).__name__)
            continue
        if codes:
            log_event(state.log, "expired device codes deleted", count=codes)
