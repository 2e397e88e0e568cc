"""SQLite: private file modes, one worker only, and an event loop that stays free while another
process holds the write lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.errors import ConfigError
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate
from dexto.gateway.settings import GatewaySettings


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_database_files_are_private(tmp_path: Path, fake: tuple[FakeUpstream, str]) -> None:
    db_path = tmp_path / "new" / "sub" / "gateway.db"
    old = os.umask(0)  # the modes must not depend on the umask
    try:
        migrate(Database(f"sqlite:///{db_path}"))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "sub") == 0o700
    with start_gateway(f"sqlite:///{db_path}", fake[1]) as gw:
        r = httpx.post(gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth())
        assert r.status_code == 200
        for suffix in ("", "-wal", "-shm"):
            side = Path(f"{db_path}{suffix}")
            assert side.exists() and _mode(side) == 0o600, (suffix, oct(_mode(side)))


def test_existing_loose_database_files_are_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    db_path = directory / "gateway.db"
    url = f"sqlite:///{db_path}"
    migrate(Database(url))
    os.chmod(db_path, 0o644)
    db = Database(url)
    db.connect()
    db.close_all()
    assert _mode(db_path) == 0o600
    assert _mode(directory) == 0o755  # an existing directory is left as it is


def test_workers_over_one_on_sqlite_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    with pytest.raises(ConfigError) as info:
        GatewaySettings.resolve({"db_url": url, "workers": 2}, env={})
    assert "PostgreSQL" in str(info.value) and "postgresql://" in info.value.fix
    with pytest.raises(ConfigError):
        GatewaySettings.resolve({"db_url": url}, env={"DEXTO_GATEWAY_WORKERS": "3"})
    assert GatewaySettings.resolve({"db_url": url, "workers": 1}, env={}).workers == 1
    pg = GatewaySettings.resolve({"db_url": "postgresql://h/db", "workers": 4}, env={})
    assert pg.workers == 4
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_GATEWAY_")}
    cmd = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve", "--db", url]
    proc = subprocess.run(
        [*cmd, "--workers", "2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "PostgreSQL" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "gateway.db").exists()


_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE accounts SET created_at = created_at")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_healthz_answers_while_another_process_holds_the_write_lock(
    tmp_path: Path, fake: tuple[FakeUpstream, str]
) -> None:
    db_path = tmp_path / "gateway.db"
    with start_gateway(f"sqlite:///{db_path}", fake[1]) as gw:
        with subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdout is not None and holder.stdin is not None
            result = _hold_and_probe(gw, holder)
        assert result["status"] == 200


def _hold_and_probe(gw: Gateway, holder: subprocess.Popen[str]) -> dict[str, int]:
    assert holder.stdout is not None and holder.stdin is not None
    result: dict[str, int] = {}

    def chat() -> None:
        r = httpx.post(gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth(), timeout=60)
        result["status"] = r.status_code

    waiter = threading.Thread(target=chat)
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiter.start()  # its admission waits for the lock on a database thread
        for _ in range(5):
            h = httpx.get(gw.url + "/healthz", timeout=60)
            assert h.status_code == 200 and h.json()["status"] == "ok"
        # Still holding the lock: the chat request cannot have been admitted yet.
        assert holder.poll() is None and "status" not in result
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    waiter.join(timeout=60)
    return result


def test_database_file_moved_or_replaced_is_refused(tmp_path: Path) -> None:
    import asyncio

    from dexto.gateway.db import DatabaseUnavailable
    from dexto.gateway.runner import DbRunner

    path = tmp_path / "gateway.db"
    other = tmp_path / "other.db"
    migrate(Database(f"sqlite:///{path}"))
    migrate(Database(f"sqlite:///{other}"))

    def count(conn: Any) -> int:
        with conn.read():
            row = conn.one("SELECT COUNT(*) FROM accounts")
        return int(row[0])

    async def scenario() -> list[str]:
        runner = DbRunner(Database(f"sqlite:///{path}"), pool_size=1)
        runner.probe_interval_s = 0.0  # every call tries the database
        seen = []
        try:
            for step in ("start", "moved", "back", "replaced"):
                if step == "moved":
                    path.rename(tmp_path / "away.db")
                elif step == "back":
                    (tmp_path / "away.db").rename(path)
                elif step == "replaced":
                    os.replace(other, path)
                try:
                    await runner.run(count)
                    seen.append("ok")
                except DatabaseUnavailable:
                    seen.append("503")
        finally:
            runner.close()
        return seen

    assert asyncio.run(scenario()) == ["ok", "503", "ok", "503"]
