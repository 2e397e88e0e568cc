"""Creating an account (account, opening credit, first key) is one transaction: a failure at
any step leaves nothing behind, so it can be retried with the same email. A ``write()`` inside
another is a savepoint, on both drivers."""

from __future__ import annotations

from typing import Any

import pytest

from dexto.gateway import admin
from dexto.gateway.db import Conn

_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER no_keys BEFORE INSERT ON api_keys"
        " BEGIN SELECT RAISE(ABORT, 'injected: no keys'); END"
    ],
    "postgres": [
        "CREATE FUNCTION no_keys() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected: no keys'; END $$",
        "CREATE TRIGGER no_keys BEFORE INSERT ON api_keys FOR EACH ROW EXECUTE FUNCTION no_keys()",
    ],
}
_UNTRIGGER = {
    "sqlite": ["DROP TRIGGER no_keys"],
    "postgres": ["DROP TRIGGER no_keys ON api_keys", "DROP FUNCTION no_keys()"],
}


def _run(conn: Conn, statements: list[str]) -> None:
    with conn.write():
        for sql in statements:
            conn.execute(sql)


def _one(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with conn.read():
        row = conn.one(sql, params)
    assert row is not None
    return row[0]


def test_an_account_whose_key_cannot_be_made_leaves_nothing_behind(conn: Conn) -> None:
    _run(conn, _TRIGGER[conn.dialect])
    with pytest.raises(Exception, match="injected: no keys"):
        admin.create_account(conn, "ann@example.com", credits_micros=5_000)
    assert _one(conn, "SELECT COUNT(*) FROM accounts") == 0
    assert _one(conn, "SELECT COUNT(*) FROM ledger") == 0
    _run(conn, _UNTRIGGER[conn.dialect])
    made = admin.create_account(conn, "ann@example.com", credits_micros=5_000)  # same email
    account_id = made["account"]["id"]
    assert made["apiKey"].startswith("dxk_")
    assert _one(conn, "SELECT balance_micros FROM accounts WHERE id = ?", (account_id,)) == 5_000
    assert _one(conn, "SELECT SUM(amount_micros) FROM ledger WHERE account_id = ?", (account_id,))
    assert _one(conn, "SELECT COUNT(*) FROM api_keys WHERE account_id = ?", (account_id,)) == 1


def test_a_failing_nested_write_rolls_back_only_its_own_statements(conn: Conn) -> None:
    conn_rows = "SELECT name FROM gateway_secrets ORDER BY name"
    with conn.write():
        conn.execute("INSERT INTO gateway_secrets (name, value, created_at) VALUES ('a', 'x', 1)")
        with pytest.raises(LookupError), conn.write():
            conn.execute(
                "INSERT INTO gateway_secrets (name, value, created_at) VALUES ('b', 'x', 1)"
            )
            raise LookupError("the inner unit fails")
        with conn.write():
            conn.execute(
                "INSERT INTO gateway_secrets (name, value, created_at) VALUES ('c', 'x', 1)"
            )
        with conn.read():  # inside the write: reads its uncommitted rows, ends nothing
            assert conn.all(conn_rows) == [("a",), ("c",)]
    with conn.read():
        assert conn.all(conn_rows) == [("a",), ("c",)]
