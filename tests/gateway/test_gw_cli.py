"""The admin CLI contract: `dexto gateway migrate|accounts|credits|keys|usage` and `dexto dev`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from dexto.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = out
    return code, doc, err


def test_admin_cli_round_trip(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, doc, _ = _run(capsys, "gateway", "migrate", "--db", sqlite_url, "--json")
    assert code == 0 and doc == {"applied": [1, 2]}
    assert _run(capsys, "gateway", "migrate", "--db", sqlite_url, "--json")[1] == {"applied": []}

    monkeypatch.setattr("sys.stdin", io.StringIO("pw-123456789\n"))
    code, doc, _ = _run(
        capsys,
        "gateway",
        "accounts",
        "create",
        "--db",
        sqlite_url,
        "--email",
        "Ann@Example.com",
        "--password-stdin",
        "--credits",
        "2.50",
        "--json",
    )
    assert code == 0
    assert set(doc) == {"account", "apiKey"}
    assert set(doc["account"]) == {"id", "email"} and doc["account"]["email"] == "ann@example.com"
    key = doc["apiKey"]
    assert key.startswith("dxk_")
    acct = doc["account"]["id"]

    code, doc, _ = _run(
        capsys,
        "gateway",
        "credits",
        "add",
        "--db",
        sqlite_url,
        "--account",
        acct,
        "--usd",
        "0.000001",
        "--json",
    )
    assert code == 0 and doc["balanceUsd"] == "2.500001"

    code, doc, _ = _run(
        capsys,
        "gateway",
        "keys",
        "create",
        "--db",
        sqlite_url,
        "--account",
        acct,
        "--name",
        "ci",
        "--json",
    )
    assert code == 0 and doc["apiKey"].startswith("dxk_") and doc["key"]["name"] == "ci"
    key_id = doc["key"]["id"]
    code, doc, _ = _run(
        capsys, "gateway", "keys", "list", "--db", sqlite_url, "--account", acct, "--json"
    )
    assert code == 0 and len(doc) == 2
    listing = json.dumps(doc)
    assert key not in listing and key[4:] not in listing  # keys are never shown again
    code, doc, _ = _run(
        capsys, "gateway", "keys", "revoke", "--db", sqlite_url, "--key", key_id, "--json"
    )
    assert code == 0 and doc == {"id": key_id, "revoked": True}
    code, doc, _ = _run(
        capsys, "gateway", "keys", "list", "--db", sqlite_url, "--account", acct, "--json"
    )
    assert [k["active"] for k in doc] == [True, False]

    code, doc, _ = _run(capsys, "gateway", "usage", "--db", sqlite_url, "--account", acct, "--json")
    assert code == 0
    assert doc == {
        "account": {"id": acct, "email": "ann@example.com"},
        "balanceUsd": "2.500001",
        "mtd": {"costUsd": "0.000000", "requests": 0},
        "recent": [],
    }
    code, out, _ = _run(capsys, "gateway", "usage", "--db", sqlite_url, "--account", acct)
    assert code == 0 and "2.500001" in str(out)

    # the database stores only the key's hash
    path = Path(sqlite_url[len("sqlite:///") :])
    raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    assert key.encode() not in raw and b"pw-123456789" not in raw


@pytest.mark.parametrize("amount", ["-5", "abc", "1.0000001", "0", "1e3", "NaN", ""])
def test_bad_amounts_are_refused(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, amount: str
) -> None:
    code, doc, _ = _run(
        capsys,
        "gateway",
        "accounts",
        "create",
        "--db",
        sqlite_url,
        "--email",
        "a@example.com",
        "--json",
    )
    acct = doc["account"]["id"]
    code, doc, _ = _run(
        capsys,
        "gateway",
        "credits",
        "add",
        "--db",
        sqlite_url,
        "--account",
        acct,
        "--usd",
        amount,
        "--json",
    )
    assert code == 2
    assert doc["error"]["code"] == "INVALID_CONFIG" and "--usd" in doc["error"]["message"]
    code, _, err = _run(
        capsys, "gateway", "credits", "add", "--db", sqlite_url, "--account", acct, "--usd", amount
    )
    assert code == 2 and err.startswith("error: ") and "fix: " in err
    code, doc, _ = _run(capsys, "gateway", "usage", "--db", sqlite_url, "--account", acct, "--json")
    assert doc["balanceUsd"] == "0.000000"  # nothing changed


@pytest.mark.parametrize(
    "argv",
    [
        ["gateway", "credits", "add", "--account", "acct_missing", "--usd", "1"],
        ["gateway", "keys", "create", "--account", "acct_missing"],
        ["gateway", "keys", "revoke", "--key", "key_missing"],
        ["gateway", "usage", "--account", "acct_missing"],
        ["gateway", "accounts", "create", "--email", "not-an-email"],
    ],
)
def test_unknown_ids_and_bad_input(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, argv: list[str]
) -> None:
    code, doc, _ = _run(capsys, *argv, "--db", sqlite_url, "--json")
    assert code == 2 and doc["error"]["fix"]


def test_duplicate_email_and_bad_db_url(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    assert (
        _run(
            capsys,
            "gateway",
            "accounts",
            "create",
            "--db",
            sqlite_url,
            "--email",
            "d@example.com",
            "--json",
        )[0]
        == 0
    )
    code, doc, _ = _run(
        capsys,
        "gateway",
        "accounts",
        "create",
        "--db",
        sqlite_url,
        "--email",
        "d@example.com",
        "--json",
    )
    assert code == 2 and "already exists" in doc["error"]["message"]
    code, doc, _ = _run(capsys, "gateway", "migrate", "--db", "mysql://u:secretpw@h/db", "--json")
    assert code == 2 and "secretpw" not in json.dumps(doc)


def test_default_db_is_under_dexto_home(
    capsys: pytest.CaptureFixture[str], isolated_env: Any
) -> None:
    code, _, _ = _run(capsys, "gateway", "migrate", "--json")
    assert code == 0 and (isolated_env / "gateway.db").exists()


def test_dev_fake_upstream_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dev", "fake-upstream", "--help"])
    out = capsys.readouterr().out
    for flag in ("--port", "--latency-ms", "--error", "--drop-after", "--malformed", "--hang-ms"):
        assert flag in out
