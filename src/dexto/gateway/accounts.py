"""Accounts and API keys. Keys are ``dxk_`` + 40 random characters; only their SHA-256 is kept."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from dexto.errors import ConfigError
from dexto.gateway.db import Conn
from dexto.gateway.ledger import credit, now_ms

__all__ = [
    "KEY_PREFIX",
    "Account",
    "create_account",
    "create_key",
    "find_account",
    "find_account_by_email",
    "hash_key",
    "list_accounts",
    "list_keys",
    "looks_like_key",
    "new_key",
    "revoke_key",
    "validate_email",
]

KEY_PREFIX = "dxk_"
_KEY_RE = re.compile(r"^dxk_[A-Za-z0-9_-]{20,100}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    balance_micros: int
    password_hash: str | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email}


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))


_PASTED_KEY_FIX = (
    "That is an API key, not an id (account ids start with acct_, key ids with key_): list"
    " them with `dexto gateway accounts list --db URL` / `dexto gateway keys list --account ID`."
)


def unknown_id(what: str, value: str, field: str, fix: str) -> ConfigError:
    """``no <what> with id …``; a value that is an API key (pasted in place of an id) is not
    repeated."""
    if looks_like_key(value):
        return ConfigError(
            f"no {what} with that id: an API key was given", field=field, fix=_PASTED_KEY_FIX
        )
    return ConfigError(f"no {what} with id {value!r}", field=field, fix=fix)


def validate_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email):
        raise ConfigError(
            f"{email!r} is not a valid email address", field="email", fix="Use name@example.com."
        )
    return email


def create_account(
    conn: Conn, email: str, *, password_hash: str | None = None, credits_micros: int = 0
) -> Account:
    email = validate_email(email)
    account_id = "acct_" + uuid.uuid4().hex[:20]
    with conn.write():
        if conn.one("SELECT 1 FROM accounts WHERE email = ?", (email,)):
            raise ConfigError(
                f"an account with email {email!r} already exists",
                field="email",
                fix="Use another email, or add credits/keys to the existing account.",
            )
        conn.execute(
            "INSERT INTO accounts (id, email, password_hash, balance_micros, created_at)"
            " VALUES (?, ?, ?, 0, ?)",
            (account_id, email, password_hash, now_ms()),
        )
    if credits_micros:
        credit(conn, account_id, credits_micros, request_id=f"credit_{uuid.uuid4().hex}")
    return Account(account_id, email, credits_micros, password_hash)


def find_account(conn: Conn, account_id: str) -> Account | None:
    with conn.read():
        row = conn.one(
            "SELECT id, email, balance_micros, password_hash FROM accounts WHERE id = ?",
            (account_id,),
        )
    return None if row is None else Account(row[0], row[1], int(row[2]), row[3])


def find_account_by_email(conn: Conn, email: str) -> Account | None:
    with conn.read():
        row = conn.one(
            "SELECT id, email, balance_micros, password_hash FROM accounts WHERE email = ?",
            (email.strip().lower(),),
        )
    return None if row is None else Account(row[0], row[1], int(row[2]), row[3])


def list_accounts(conn: Conn) -> list[Account]:
    with conn.read():
        rows = conn.all("SELECT id, email, balance_micros FROM accounts ORDER BY created_at, id")
    return [Account(r[0], r[1], int(r[2])) for r in rows]


def create_key(
    conn: Conn, account_id: str, *, name: str | None = None
) -> tuple[dict[str, Any], str]:
    """Create a key; return (its public description, the plaintext key shown once). A name
    with control characters (terminal escapes) is refused."""
    if name is not None and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise ConfigError(
            "the key name contains control characters",
            field="name",
            fix="Use a name of printable characters, e.g. --name ci-runner.",
        )
    key = new_key()
    key_id = "key_" + uuid.uuid4().hex[:20]
    prefix = key[:8] + "…" + key[-4:]
    created = now_ms()
    with conn.write():
        if conn.one("SELECT 1 FROM accounts WHERE id = ?", (account_id,)) is None:
            raise unknown_id(
                "account",
                account_id,
                "account",
                "List accounts with `dexto gateway accounts list`.",
            )
        conn.execute(
            "INSERT INTO api_keys (id, account_id, key_hash, prefix, name, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, account_id, hash_key(key), prefix, name, created),
        )
    return _key_dict(key_id, account_id, prefix, name, created, None), key


def _key_dict(
    key_id: str, account_id: str, prefix: str, name: str | None, created: int, revoked: int | None
) -> dict[str, Any]:
    return {
        "id": key_id,
        "accountId": account_id,
        "prefix": prefix,
        "name": name,
        "createdAt": created,
        "revokedAt": revoked,
        "active": revoked is None,
    }


def list_keys(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    with conn.read():
        rows = conn.all(
            "SELECT id, account_id, prefix, name, created_at, revoked_at FROM api_keys"
            " WHERE account_id = ? ORDER BY created_at, id",
            (account_id,),
        )
    return [_key_dict(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]


def revoke_key(conn: Conn, key_id: str) -> bool:
    """Revoke a key (idempotent); False if there is no such key."""
    with conn.write():
        row = conn.one("SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            return False
        if row[0] is None:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now_ms(), key_id))
    return True
