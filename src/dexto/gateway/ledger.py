"""Billing core: admission holds, settlement, top-ups, sweeping. Synchronous, one transaction each.

Invariants (tested, see docs/gateway.md):

* ``accounts.balance_micros`` always equals the sum of the account's ledger ``amount_micros``.
* A request is charged at most once: the ledger is keyed by ``request_id`` (``ON CONFLICT DO
  NOTHING``) and the balance moves only when the row is inserted.
* Admission places a hold only if ``balance - active holds >= hold``; the check and the insert
  happen under the account's write lock, so concurrent requests cannot spend the same money.
* Settlement debits ``min(cost, balance + overdraft_limit)`` (never below zero), so no balance
  ever drops below ``-overdraft_limit``; the rest is recorded as ``written_off_micros``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dexto.gateway.db import Conn

__all__ = [
    "INSERT_SWEPT",
    "MAX_CHARGE_MICROS",
    "AdmitResult",
    "SettleResult",
    "admit",
    "credit",
    "now_ms",
    "progress",
    "progress_many",
    "recorded_charge",
    "release",
    "renew_many",
    "settle",
    "sweep_expired",
]


MAX_CHARGE_MICROS = 10**15  # $1e9: a ceiling that keeps any charge inside BIGINT


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class AdmitResult:
    status: str  # "ok" | "invalid_key" | "insufficient"
    account_id: str = ""
    key_id: str = ""
    balance_micros: int = 0
    available_micros: int = 0  # after this request's hold (if admitted)


@dataclass(frozen=True, slots=True)
class SettleResult:
    charged_micros: int  # what left the balance
    written_off_micros: int
    balance_micros: int
    duplicate: bool  # the request id was already settled: nothing changed


_AUTH_SQLITE = (
    "SELECT k.id, k.account_id, a.balance_micros,"
    " (SELECT COALESCE(SUM(h.amount_micros), 0) FROM holds h"
    "  WHERE h.account_id = k.account_id AND h.expires_at > ?)"
    " FROM api_keys k JOIN accounts a ON a.id = k.account_id"
    " WHERE k.key_hash = ? AND k.revoked_at IS NULL"
)
_AUTH_PG = (
    "SELECT k.id, k.account_id, a.balance_micros"
    " FROM api_keys k JOIN accounts a ON a.id = k.account_id"
    " WHERE k.key_hash = ? AND k.revoked_at IS NULL FOR UPDATE OF a"
)
_HELD = "SELECT COALESCE(SUM(amount_micros), 0) FROM holds WHERE account_id = ? AND expires_at > ?"
_INSERT_HOLD = (
    "INSERT INTO holds (request_id, account_id, amount_micros, created_at, expires_at,"
    " model, key_id, prompt_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def admit(
    conn: Conn,
    key_hash: str,
    request_id: str,
    hold_micros: int,
    *,
    ttl_ms: int,
    now: int | None = None,
    model: str | None = None,
    prompt_tokens: int | None = None,
) -> AdmitResult:
    """Authenticate the key and, if the account can afford ``hold_micros``, place a hold.

    The hold records what a sweeper needs to bill the request if its worker never settles it:
    the model, the key and the prompt-token estimate (see :func:`progress` for the rest).
    """
    now = now_ms() if now is None else now
    with conn.write():
        if conn.dialect == "sqlite":
            row = conn.one(_AUTH_SQLITE, (now, key_hash))
            if row is None:
                return AdmitResult("invalid_key")
            key_id, account_id, balance, held = row
        else:
            row = conn.one(_AUTH_PG, (key_hash,))
            if row is None:
                return AdmitResult("invalid_key")
            key_id, account_id, balance = row
            # A new statement after the row lock: sees every hold committed before we got it.
            held_row = conn.one(_HELD, (account_id, now))
            held = held_row[0] if held_row else 0
        available = int(balance) - int(held)
        if available < max(hold_micros, 1):
            return AdmitResult("insufficient", account_id, key_id, int(balance), available)
        conn.execute(
            _INSERT_HOLD,
            (request_id, account_id, hold_micros, now, now + ttl_ms, model, key_id, prompt_tokens),
        )
        return AdmitResult("ok", account_id, key_id, int(balance), available - hold_micros)


_LOCK_BALANCE = {
    "sqlite": "SELECT balance_micros FROM accounts WHERE id = ?",
    "postgres": "SELECT balance_micros FROM accounts WHERE id = ? FOR UPDATE",
}
_INSERT_LEDGER = (
    "INSERT INTO ledger (request_id, account_id, kind, amount_micros, cost_micros,"
    " written_off_micros, hold_micros, estimated, model, prompt_tokens, completion_tokens,"
    " key_id, session_id, source, client_version, created_at, estimate_reason, settled_by)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (request_id) DO NOTHING RETURNING id"
)


def settle(
    conn: Conn,
    request_id: str,
    account_id: str,
    cost_micros: int,
    *,
    overdraft_limit_micros: int,
    model: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    estimated: bool = False,
    key_id: str | None = None,
    session_id: str | None = None,
    source: str | None = None,
    client_version: str | None = None,
    now: int | None = None,
    estimate_reason: str | None = None,
    settled_by: str | None = None,
    expired_before: int | None = None,
    swept_reason: str | None = None,
) -> SettleResult:
    """Replace the request's hold by its charge, in one transaction; idempotent per request id.

    With ``expired_before`` (the sweeper), nothing happens unless the hold still exists and
    expired before that time: a request its live worker settled, or is still heartbeating, is
    left alone. With ``swept_reason`` the charge is also recorded in ``swept_holds`` (action
    ``settled``), in the same transaction. Without ``expired_before`` a request whose hold is
    already gone (released or swept) is still charged, once.
    """
    now = now_ms() if now is None else now
    cost_micros = min(max(0, int(cost_micros)), MAX_CHARGE_MICROS)
    with conn.write():
        row = conn.one(_LOCK_BALANCE[conn.dialect], (account_id,))
        if row is None:
            raise LookupError(f"no account {account_id!r}")
        balance = int(row[0])
        if expired_before is None:
            hold_row = conn.one(
                "DELETE FROM holds WHERE request_id = ? RETURNING amount_micros", (request_id,)
            )
        else:
            hold_row = conn.one(
                "DELETE FROM holds WHERE request_id = ? AND expires_at <= ?"
                " RETURNING amount_micros",
                (request_id, expired_before),
            )
            if hold_row is None:
                return SettleResult(0, 0, balance, True)
        hold = int(hold_row[0]) if hold_row else 0
        debit = min(cost_micros, max(0, balance + overdraft_limit_micros))
        written_off = cost_micros - debit
        inserted = conn.one(
            _INSERT_LEDGER,
            (
                request_id,
                account_id,
                "charge",
                -debit,
                cost_micros,
                written_off,
                hold,
                1 if estimated else 0,
                model,
                prompt_tokens,
                completion_tokens,
                key_id,
                session_id,
                source,
                client_version,
                now,
                estimate_reason if estimated else None,
                settled_by,
            ),
        )
        if inserted is None:
            return SettleResult(0, 0, balance, True)
        if debit:
            conn.execute(
                "UPDATE accounts SET balance_micros = balance_micros - ? WHERE id = ?",
                (debit, account_id),
            )
        if swept_reason is not None:
            conn.execute(INSERT_SWEPT, (request_id, account_id, hold, "settled", swept_reason, now))
        return SettleResult(debit, written_off, balance - debit, False)


def recorded_charge(conn: Conn, request_id: str) -> tuple[int, int] | None:
    """The charge the ledger recorded for ``request_id``: (debited, written off) micros, or None
    if the request has no charge row."""
    with conn.read():
        row = conn.one(
            "SELECT amount_micros, written_off_micros FROM ledger"
            " WHERE request_id = ? AND kind = 'charge'",
            (request_id,),
        )
    return None if row is None else (-int(row[0]), int(row[1]))


def release(conn: Conn, request_id: str) -> bool:
    """Drop a hold without charging (upstream failed before any billable work)."""
    with conn.write():
        row = conn.one(
            "DELETE FROM holds WHERE request_id = ? RETURNING amount_micros", (request_id,)
        )
    return row is not None


def renew_many(conn: Conn, request_ids: list[str], expires_at: int) -> frozenset[str]:
    """Extend the lease of holds whose requests are still running (nothing else changes);
    returns the request ids whose hold still existed."""
    found: set[str] = set()
    with conn.write():
        for request_id in request_ids:
            row = conn.one(
                "UPDATE holds SET expires_at = ? WHERE request_id = ? RETURNING request_id",
                (expires_at, request_id),
            )
            if row is not None:
                found.add(request_id)
    return frozenset(found)


def progress(
    conn: Conn,
    request_id: str,
    *,
    generation_id: str | None,
    completion_tokens: int,
    expires_at: int,
) -> bool:
    """Record on the hold what was delivered so far and extend its lease; False if it is gone."""
    rows = [(request_id, generation_id, completion_tokens)]
    return request_id in progress_many(conn, rows, expires_at)


def progress_many(
    conn: Conn, rows: list[tuple[str, str | None, int]], expires_at: int
) -> frozenset[str]:
    """:func:`progress` for many holds in one transaction: (request id, generation id, tokens).
    Returns the request ids whose hold still existed."""
    found: set[str] = set()
    with conn.write():
        for request_id, generation_id, tokens in rows:
            row = conn.one(
                "UPDATE holds SET generation_id = COALESCE(?, generation_id),"
                " completion_tokens = ?, delivered = 1, expires_at = ?"
                " WHERE request_id = ? RETURNING request_id",
                (generation_id, tokens, expires_at, request_id),
            )
            if row is not None:
                found.add(request_id)
    return frozenset(found)


def credit(
    conn: Conn, account_id: str, micros: int, *, request_id: str, kind: str = "credit"
) -> int | None:
    """Add ``micros`` to the balance with a ledger row; idempotent per ``request_id``.

    Returns the new balance, or None if the account does not exist.
    """
    now = now_ms()
    with conn.write():
        row = conn.one(_LOCK_BALANCE[conn.dialect], (account_id,))
        if row is None:
            return None
        inserted = conn.one(
            _INSERT_LEDGER,
            (
                request_id,
                account_id,
                kind,
                micros,
                0,
                0,
                0,
                0,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                now,
                None,
                None,
            ),
        )
        if inserted is None:
            return int(row[0])
        conn.execute(
            "UPDATE accounts SET balance_micros = balance_micros + ? WHERE id = ?",
            (micros, account_id),
        )
        return int(row[0]) + micros


INSERT_SWEPT = (
    "INSERT INTO swept_holds (request_id, account_id, amount_micros, action, reason, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"
)


def sweep_expired(conn: Conn, now: int | None = None) -> int:
    """Release expired holds on which nothing was delivered (they already stopped counting);
    each is recorded in ``swept_holds``. Return how many. Holds that delivered output are
    settled by :mod:`dexto.gateway.sweeper` instead."""
    now = now_ms() if now is None else now
    with conn.write():
        rows = conn.all(
            "DELETE FROM holds WHERE expires_at <= ? AND delivered = 0"
            " RETURNING request_id, account_id, amount_micros",
            (now,),
        )
        for rid, acct, amount in rows:
            conn.execute(INSERT_SWEPT, (rid, acct, amount, "released", "nothing delivered", now))
    return len(rows)
