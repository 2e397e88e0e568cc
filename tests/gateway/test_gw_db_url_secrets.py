"""A database password never reaches the gateway's log or a user's terminal: it is redacted
where it is written into the URL (``user:password@`` or ``?password=``), and a URL libpq cannot
parse is refused with a typed error that does not repeat it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _gwproc import serve

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.errors import ConfigError
from dexto.gateway.db import Database, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://:s3cret@h/db", "postgresql://:***@h/db"),
        ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u:s3cret@h/db?sslmode=require&password=s3cret&connect_timeout=3",
            "postgresql://u:***@h/db?sslmode=require&password=***&connect_timeout=3",
        ),
        (
            "postgresql://u@h/db?options=-csearch_path%3Dx",
            "postgresql://u@h/db?options=-csearch_path%3Dx",
        ),
        ("sqlite:////var/lib/dexto/gateway.db", "sqlite:////var/lib/dexto/gateway.db"),
        ("sqlite:///rel.db", "sqlite:///rel.db"),
        ("redis://:s3cret@[::1/0?password=s3cret", "redis://:***@[::1/0?password=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


BAD = "postgresql://u:pa%zzword@127.0.0.1:5432/test"  # a raw % that libpq refuses to decode


def test_an_unparseable_postgresql_url_is_a_config_error_that_does_not_repeat_it() -> None:
    with pytest.raises(ConfigError) as info:
        Database(BAD)
    assert "pa%zzword" not in str(info.value) and "%25" in (info.value.fix or "")


@pytest.mark.parametrize("command", [["gateway", "serve"], ["gateway", "migrate"]])
def test_the_cli_refuses_an_unparseable_url_without_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env |= {"DEXTO_HOME": str(tmp_path), "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-test"}
    out = subprocess.run(
        [sys.executable, "-m", "dexto.cli.main", *command, "--db", BAD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    text = out.stdout + out.stderr
    assert "cannot be parsed" in text and "DEXTO_GATEWAY_DB" in text
    assert "pa%zzword" not in text and "Traceback" not in text


@pytest.mark.postgres
def test_a_password_in_the_url_query_is_not_logged(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """The test server trusts loopback, so the password is accepted and unused."""
    url = pg_url + "&password=hunter2-s3cret"
    with serve(url, fake[1], tmp_path) as gw:
        log = gw.log_path.read_text()
        started = [line for line in gw.log_lines() if line.get("msg") == "gateway started"]
    assert started and "password=***" in started[0]["db"]
    assert "hunter2" not in log
