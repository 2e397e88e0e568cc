"""Issue #13, operators: the gateway and server commands through the real console script."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import DEXTO, Run
from tests.gateway._gwhelpers import wait_healthy

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_mistyped_db_directory_is_refused_until_migrate_create(dexto: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/typo/dir/gw.db"
    for args in (
        ["accounts", "list"],
        ["accounts", "create", "--email", "a@example.com"],
        ["migrate"],
        ["usage", "--account", "acct_x"],
    ):
        proc = dexto("gateway", *args, "--db", url)
        assert proc.returncode == 2, proc.stdout
        assert "no such directory" in proc.stderr and "migrate --create" in proc.stderr
    assert not (tmp_path / "typo").exists()
    made = dexto("gateway", "migrate", "--create", "--db", url)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "typo" / "dir" / "gw.db").is_file()
    listed = dexto("gateway", "accounts", "list", "--db", url)
    assert listed.returncode == 0 and listed.stdout.strip() == "(none)"


def test_missing_db_file_is_refused_by_commands_that_only_read(dexto: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    proc = dexto("gateway", "accounts", "list", "--db", url, "--json")
    assert proc.returncode == 2
    assert "no gateway database" in json.loads(proc.stdout)["error"]["message"]
    assert not (tmp_path / "gw.db").exists()


def test_usage_and_keys_list_are_tables_with_iso_dates(dexto: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    made = dexto(
        "gateway",
        "accounts",
        "create",
        "--email",
        "ann@example.com",
        "--credits",
        "1.5",
        "--db",
        url,
        "--json",
    )
    acct = json.loads(made.stdout)["account"]["id"]
    key_id = json.loads(
        dexto("gateway", "keys", "create", "--account", acct, "--db", url, "--json").stdout
    )["key"]["id"]
    assert dexto("gateway", "keys", "revoke", "--key", key_id, "--db", url).returncode == 0
    table = dexto("gateway", "keys", "list", "--account", acct, "--db", url).stdout
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "PREFIX", "NAME", "CREATED", "STATUS"]
    assert len(lines) == 3 and "None" not in table and "{" not in table
    created = re.findall(r"\d{4}-\d\d-\d\dT\S+Z", table)
    assert len(created) == 3 and all(ISO.match(c) for c in created)  # 2 created + 1 revoked
    assert "revoked 20" in table
    keys = json.loads(
        dexto("gateway", "keys", "list", "--account", acct, "--db", url, "--json").stdout
    )
    assert all(ISO.match(k["createdAt"]) for k in keys)
    assert [k["revokedAt"] is None for k in keys] == [True, False]
    usage = dexto("gateway", "usage", "--account", acct, "--db", url).stdout
    assert "balance     $1.500000" in usage and "this month  $0.000000 in 0 requests" in usage
    assert "None" not in usage and "{" not in usage


def test_gateway_serve_prints_its_address_and_refuses_a_busy_port(
    dexto: Run, tmp_path: Path, busy_port: int
) -> None:
    url = f"sqlite:///{tmp_path}/gw.db"
    busy = dexto(
        "gateway",
        "serve",
        "--port",
        str(busy_port),
        "--db",
        url,
        "--upstream",
        "http://127.0.0.1:9/v1",
    )
    assert busy.returncode == 2
    assert "already in use" in busy.stderr and "--port" in busy.stderr
    assert "gateway started" not in busy.stderr + busy.stdout
    assert "Traceback" not in busy.stderr
    assert not (tmp_path / "gw.db").exists()  # nothing is created for a server that never ran
    proc = subprocess.Popen(
        [
            DEXTO,
            "gateway",
            "serve",
            "--port",
            "0",
            "--db",
            url,
            "--upstream",
            "http://127.0.0.1:9/v1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = _first_line(proc)
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert found, line
        wait_healthy(found.group(1), proc, timeout=30)
    finally:
        _stop(proc)


def test_dexto_serve_on_a_busy_port_is_a_clean_error(
    dexto: Run, isolated_env: Path, busy_port: int
) -> None:
    proc = dexto("serve", "--port", str(busy_port), "--no-refresh")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --port: cannot listen on http://127.0.0.1:{busy_port}")
    assert "already in use" in proc.stderr and "Traceback" not in proc.stderr
    fix = proc.stderr.split("\nfix: ", 1)[1]
    assert f"--port {busy_port + 1}" in fix and "--port 0" in fix
    assert proc.stdout == ""  # no banner for a server that never listened
    assert list(isolated_env.iterdir()) == []  # the default agent was not installed
    # With a port it can bind (--port 0, as the fix says) it installs the default agent.
    served = subprocess.Popen(
        [DEXTO, "serve", "--port", "0", "--no-refresh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert _first_line(served).startswith("dexto serve: ")
        found = re.search(r"web UI  (http://127\.0\.0\.1:\d+)/", _first_line(served))
        assert found
        wait_healthy(found.group(1), served, path="/llm/current", timeout=30)
        assert (isolated_env / "agents" / "default-agent" / "default-agent.yml").is_file()
    finally:
        _stop(served)


SERVE_BAD_FLAGS = [  # (arguments, environment, the field named, the problem)
    (["--port", "70000"], {}, "--port", "port 70000 is out of range"),
    (["--port", "abc"], {}, "--port", "'abc' is not a port number"),
    (["--port", "-1"], {}, "--port", "'-1' is not a port number"),
    (["--port", ""], {}, "--port", "'' is not a port number"),
    (["--host", "0.0.0.0"], {}, "--host", "without a token"),
    (["--token", "short"], {}, "--token", "shorter than 8 characters"),
    ([], {"DEXTO_SERVER_TOKEN": "short"}, "--token", "shorter than 8 characters"),
]


@pytest.mark.parametrize("args, env, field, problem", SERVE_BAD_FLAGS)
def test_dexto_serve_refuses_bad_flags_before_writing_anything(
    dexto: Run, isolated_env: Path, args: list[str], env: dict[str, str], field: str, problem: str
) -> None:
    proc = dexto("serve", *args, "--no-refresh", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {field}: ") and problem in proc.stderr
    assert "\nfix: " in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert list(isolated_env.iterdir()) == []  # the default agent was not installed


def test_dexto_serve_on_port_0_answers_on_the_port_it_picked(isolated_env: Path) -> None:
    proc = subprocess.Popen(
        [DEXTO, "serve", "--port", "0", "--no-refresh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert _first_line(proc).startswith("dexto serve: ")
        found = re.search(r"web UI  (http://127\.0\.0\.1:(\d+))/", _first_line(proc))
        assert found and found.group(2) != "0"
        wait_healthy(found.group(1), proc, path="/llm/current", timeout=30)
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    "tool, path", [("fake-upstream", "/api/v1/models"), ("fake-openai", "/_fake/requests")]
)
def test_dev_fakes_print_their_url(tool: str, path: str) -> None:
    proc = subprocess.Popen(
        [DEXTO, "dev", tool, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", _first_line(proc))
        assert found
        wait_healthy(found.group(1), proc, path=path, timeout=30)
    finally:
        _stop(proc)
