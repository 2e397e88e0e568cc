"""Admin operations shared by the CLI (`dexto gateway …`) and the admin HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

from dexto.errors import ConfigError
from dexto.gateway import accounts, ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import LATEST_VERSION, current_version
from dexto.gateway.money import format_usd
from dexto.gateway.passwords import hash_password
from dexto.gateway.usage import usage_report

__all__ = [
    "add_credits",
    "create_account",
    "create_key",
    "list_accounts",
    "list_keys",
    "open_db",
    "require_schema",
    "revoke_key",
    "usage",
]

_NO_ACCOUNT_FIX = "List accounts with `dexto gateway accounts list --db URL`."


def open_db(url: str) -> tuple[Database, Conn]:
    db = Database(url)
    return db, db.connect()


def require_schema(conn: Conn) -> None:
    version = current_version(conn)
    if version < LATEST_VERSION:
        raise ConfigError(
            f"the gateway database is at schema version {version}, this gateway needs "
            f"{LATEST_VERSION}",
            fix="Run `dexto gateway migrate --db URL` first.",
        )


def check_and_hash_password(password: str | None) -> str | None:
    """The scrypt hash of ``password`` (None for no password); refuses short passwords."""
    if password is not None and len(password) < 8:
        raise ConfigError(
            "the password is shorter than 8 characters",
            field="password",
            fix="Choose a password of at least 8 characters.",
        )
    return hash_password(password) if password else None


def create_account(
    conn: Conn,
    email: str,
    *,
    password: str | None = None,
    password_hash: str | None = None,
    credits_micros: int = 0,
) -> dict[str, Any]:
    pw_hash = password_hash or check_and_hash_password(password)
    with conn.write():  # account, credit and key: one transaction, all or nothing
        acct = accounts.create_account(
            conn, email, password_hash=pw_hash, credits_micros=credits_micros
        )
        _info, key = accounts.create_key(conn, acct.id, name="default")
    return {"account": acct.public(), "apiKey": key}


def add_credits(
    conn: Conn, account_id: str, micros: int, *, reference: str | None = None
) -> dict[str, Any]:
    """Credit ``micros``; once per ``reference`` (a new one when None). The same reference given
    again for the same account and amount adds nothing and answers ``"duplicate": true``; for
    another account or amount it is refused."""
    ref = reference or f"credit_{uuid.uuid4().hex}"
    with conn.write():
        before = None
        if reference is not None:
            before = conn.one(
                "SELECT account_id, amount_micros, kind FROM ledger WHERE request_id = ?", (ref,)
            )
            if before is not None and tuple(before) != (account_id, micros, "credit"):
                raise ConfigError(
                    "this idempotency key was already used for a different top-up",
                    field="Idempotency-Key",
                    fix="Use a new Idempotency-Key for a new top-up; repeat a key only to "
                    "retry the same request.",
                )
        balance = ledger.credit(conn, account_id, micros, request_id=ref)
    if balance is None:
        raise accounts.unknown_id("account", account_id, "account", _NO_ACCOUNT_FIX)
    return {
        "accountId": account_id,
        "addedUsd": format_usd(micros),
        "balanceUsd": format_usd(balance),
        "reference": ref,
        "duplicate": before is not None,
    }


def create_key(conn: Conn, account_id: str, *, name: str | None = None) -> dict[str, Any]:
    info, key = accounts.create_key(conn, account_id, name=name)
    return {"key": info, "apiKey": key}


def list_keys(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    if accounts.find_account(conn, account_id) is None:
        raise accounts.unknown_id("account", account_id, "account", _NO_ACCOUNT_FIX)
    return accounts.list_keys(conn, account_id)


def revoke_key(conn: Conn, key_id: str) -> dict[str, Any]:
    if not accounts.revoke_key(conn, key_id):
        raise accounts.unknown_id(
            "key", key_id, "key", "List keys with `dexto gateway keys list --account ID`."
        )
    return {"id": key_id, "revoked": True}


def list_accounts(conn: Conn) -> list[dict[str, Any]]:
    return [
        {**a.public(), "balanceUsd": format_usd(a.balance_micros)}
        for a in accounts.list_accounts(conn)
    ]


def usage(conn: Conn, account_id: str, *, recent: int = 20) -> dict[str, Any]:
    report = usage_report(conn, account_id, recent=recent)
    if report is None:
        raise accounts.unknown_id("account", account_id, "account", _NO_ACCOUNT_FIX)
    return report
