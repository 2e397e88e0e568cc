"""Operators' input mistakes get a typed error before anything starts, naming the setting and
never repeating a secret: gateway settings from the environment, ids that are really API keys,
database URLs whose password libpq misreads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dexto.cli.main import main
from dexto.errors import ConfigError
from dexto.gateway.db import Database, DatabaseUnavailable
from dexto.gateway.settings import GatewaySettings, default_spool_dir


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("DEXTO_GATEWAY_UPSTREAM_URL", "ftp://user:sk-or-v1-S3CRET@x", "S3CRET"),
        ("DEXTO_GATEWAY_UPSTREAM_URL", "http://u:S3CRET@h:notaport/v1", "S3CRET"),
        ("DEXTO_GATEWAY_UPSTREAM_URL", "https://", None),
        ("DEXTO_GATEWAY_PUBLIC_URL", "http://[::1", None),
        ("DEXTO_GATEWAY_REDIS_URL", "notaurl", None),
        ("DEXTO_GATEWAY_REDIS_URL", "redis://:S3CRET@127.0.0.1:notaport/0", "S3CRET"),
        ("DEXTO_GATEWAY_REDIS_URL", "http://127.0.0.1:6379/0", None),
        ("DEXTO_GATEWAY_LOG_LEVEL", "LOUD", None),
        ("DEXTO_GATEWAY_RESERVE_REQUESTS", "1025", None),
        ("DEXTO_GATEWAY_RESERVE_REQUESTS", "-1", None),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(
    variable: str, value: str, secret: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        GatewaySettings.resolve({"db_url": "sqlite:////tmp/unused.db"}, env={variable: value})
    text = f"{info.value} {info.value.fix}"
    assert variable in text and info.value.fix
    assert secret is None or secret not in text


@pytest.mark.parametrize(
    ("variable", "value", "kept"),
    [
        ("DEXTO_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("DEXTO_GATEWAY_REDIS_URL", "rediss://:pw@cache:6380/1", "rediss://:pw@cache:6380/1"),
        ("DEXTO_GATEWAY_REDIS_URL", "unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("DEXTO_GATEWAY_LOG_LEVEL", "warning", "WARNING"),
        ("DEXTO_GATEWAY_RESERVE_REQUESTS", "1024", 1024),
        ("DEXTO_GATEWAY_RESERVE_REQUESTS", "0", 0),
    ],
)
def test_good_settings_are_kept(variable: str, value: str, kept: Any) -> None:
    s = GatewaySettings.resolve({"db_url": "sqlite:////tmp/unused.db"}, env={variable: value})
    assert kept in (s.redis_url, s.log_level, s.reserve_requests)


def test_serve_refuses_a_bad_log_level_before_it_listens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env |= {"DEXTO_HOME": str(tmp_path), "DEXTO_GATEWAY_LOG_LEVEL": "LOUD"}
    argv = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve", "--port", "0"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "DEXTO_GATEWAY_LOG_LEVEL" in text
    assert "listening" not in text and "Traceback" not in text


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_an_api_key_given_as_an_id_is_not_repeated(
    capsys: pytest.CaptureFixture[str], sqlite_url: str
) -> None:
    code, doc, _ = _run(
        capsys, "gateway", "accounts", "create", "--db", sqlite_url, "--email", "a@b.co", "--json"
    )
    assert code == 0
    key = doc["apiKey"]
    for argv in (
        ("gateway", "keys", "revoke", "--db", sqlite_url, "--key", key),
        ("gateway", "keys", "create", "--db", sqlite_url, "--account", key),
        ("gateway", "keys", "list", "--db", sqlite_url, "--account", key),
        ("gateway", "usage", "--db", sqlite_url, "--account", key),
        ("gateway", "credits", "add", "--db", sqlite_url, "--account", key, "--usd", "1"),
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert key not in err and key[4:] not in err, argv
        assert "an API key was given" in err and "acct_" in err, argv


def test_libpq_reading_part_of_the_password_as_the_host_is_not_shown() -> None:
    """A raw ``@`` in the password: Python and libpq split the URL differently, and libpq's
    error quotes what it took for the host — part of the password."""
    url = "postgresql://admin:Tr0ub4dor@Horse-Battery-Staple@127.0.0.1:1/db"
    with pytest.raises(DatabaseUnavailable) as info:
        Database(url).connect()
    text = f"{info.value} {info.value.fix}"
    assert "Tr0ub4dor" not in text and "Horse-Battery-Staple" not in text
    assert "%40" in text


def test_a_database_url_whose_port_python_cannot_read_still_gets_a_spool_dir() -> None:
    url = "postgresql://u:pw@db.example:notaport/dexto"
    assert "notaport" not in default_spool_dir(url, env={"DEXTO_HOME": "/tmp/h"})
    assert default_spool_dir(url, env={"DEXTO_HOME": "/tmp/h"}).startswith("/tmp/h/")


@pytest.mark.parametrize("name", ["\x1b[31mred", "tab\there", "bell\x07", "c1\x9b31m"])
def test_a_key_name_with_control_characters_is_refused(
    capsys: pytest.CaptureFixture[str], sqlite_url: str, name: str
) -> None:
    """``keys list`` would print them raw: terminal escapes in an operator's terminal."""
    code, doc, _ = _run(
        capsys, "gateway", "accounts", "create", "--db", sqlite_url, "--email", "k@b.co", "--json"
    )
    acct = doc["account"]["id"]
    code, _, err = _run(
        capsys, "gateway", "keys", "create", "--db", sqlite_url, "--account", acct, "--name", name
    )
    assert code == 2 and "control characters" in err and "\x1b" not in err
    code, doc, _ = _run(
        capsys, "gateway", "keys", "list", "--db", sqlite_url, "--account", acct, "--json"
    )
    assert code == 0 and [k["name"] for k in doc] == ["default"]
