"""Versioned schema migrations, one list of statements per version and dialect.

Applying is idempotent and safe to run from many workers at once: the whole run is one
transaction holding the write lock (SQLite) or an advisory lock (PostgreSQL).
"""

from __future__ import annotations

import time

from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations_batch import batch_functions
from dexto.gateway.migrations_ledger import ledger_functions
from dexto.gateway.migrations_login import login_schema
from dexto.gateway.migrations_step import step_functions

__all__ = ["LATEST_VERSION", "MIGRATIONS", "current_version", "migrate"]

_ADVISORY_KEY = 0x6478_746F_6777  # "dxtogw"


def _v1(d: str) -> list[str]:
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if d == "sqlite" else "BIGSERIAL PRIMARY KEY"
    stmts = [
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT,
            balance_micros BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL)""",
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            key_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            name TEXT,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT)""",
        "CREATE INDEX api_keys_account ON api_keys(account_id)",
        """CREATE TABLE holds (
            request_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            amount_micros BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL)""",
        "CREATE INDEX holds_account ON holds(account_id, expires_at)",
        f"""CREATE TABLE ledger (
            id {serial},
            request_id TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL REFERENCES accounts(id),
            kind TEXT NOT NULL,
            amount_micros BIGINT NOT NULL,
            cost_micros BIGINT NOT NULL DEFAULT 0,
            written_off_micros BIGINT NOT NULL DEFAULT 0,
            hold_micros BIGINT NOT NULL DEFAULT 0,
            estimated SMALLINT NOT NULL DEFAULT 0,
            model TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            key_id TEXT,
            session_id TEXT,
            source TEXT,
            client_version TEXT,
            created_at BIGINT NOT NULL)""",
        "CREATE INDEX ledger_account_time ON ledger(account_id, created_at)",
        """CREATE TABLE device_codes (
            device_code_hash TEXT PRIMARY KEY,
            user_code TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            account_id TEXT REFERENCES accounts(id),
            failures INTEGER NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            last_poll_at BIGINT NOT NULL DEFAULT 0)""",
    ]
    if d == "sqlite":
        stmts += [
            """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
               BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
            """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
               BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END""",
        ]
    else:
        stmts += [
            """CREATE OR REPLACE FUNCTION dexto_ledger_append_only() RETURNS trigger
               LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$""",
            """CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
               FOR EACH ROW EXECUTE FUNCTION dexto_ledger_append_only()""",
        ]
    return stmts


def _v2(d: str) -> list[str]:
    """Durable holds (what is needed to bill a request its worker never settled) and the
    reason behind every estimated charge; swept holds are recorded for reconciliation."""
    return [
        "ALTER TABLE holds ADD COLUMN model TEXT",
        "ALTER TABLE holds ADD COLUMN key_id TEXT",
        "ALTER TABLE holds ADD COLUMN prompt_tokens INTEGER",
        "ALTER TABLE holds ADD COLUMN generation_id TEXT",
        "ALTER TABLE holds ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE holds ADD COLUMN delivered SMALLINT NOT NULL DEFAULT 0",
        "ALTER TABLE ledger ADD COLUMN estimate_reason TEXT",
        "ALTER TABLE ledger ADD COLUMN settled_by TEXT",
        """CREATE TABLE swept_holds (
            request_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            amount_micros BIGINT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT,
            created_at BIGINT NOT NULL)""",
        "CREATE INDEX swept_holds_time ON swept_holds(created_at)",
    ]


MIGRATIONS = {
    1: _v1,
    2: _v2,
    3: login_schema,
    4: ledger_functions,
    5: batch_functions,
    6: step_functions,
}
LATEST_VERSION = max(MIGRATIONS)


def _ensure_table(conn: Conn) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
    )


def current_version(conn: Conn) -> int:
    with conn.read():
        if conn.dialect == "sqlite":
            exists = conn.one(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            )
        else:
            exists = conn.one("SELECT to_regclass('schema_migrations')")
            exists = exists if exists and exists[0] else None
        if not exists:
            return 0
        row = conn.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0


def migrate(db: Database) -> list[int]:
    """Apply every missing migration; return the versions applied (empty if up to date)."""
    conn = db.connect()
    try:
        applied: list[int] = []
        with conn.write():
            if conn.dialect == "postgres":
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_KEY,))
            _ensure_table(conn)
            done = {int(r[0]) for r in conn.all("SELECT version FROM schema_migrations")}
            for version in sorted(MIGRATIONS):
                if version in done:
                    continue
                for stmt in MIGRATIONS[version](conn.dialect):
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, int(time.time() * 1000)),
                )
                applied.append(version)
        return applied
    finally:
        db.forget(conn)
