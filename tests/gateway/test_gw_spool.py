"""The settlement spool (real files, a real locking process) and the ledger rules it relies on:
a settle whose hold is gone still charges once; the sweeper's settle and its ``swept_holds``
row are one transaction."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dexto.gateway import accounts, ledger
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate
from dexto.gateway.spool import Spool, claim_orphans, clean_stale_tmp, read_pending

_LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def _account(conn: Conn, email: str, credits: int = 100_000) -> tuple[str, str]:
    acct = accounts.create_account(conn, email, credits_micros=credits)
    _, key = accounts.create_key(conn, acct.id)
    return acct.id, accounts.hash_key(key)


def _rows(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.read():
        return [tuple(r) for r in conn.all(sql, params)]


def _kw(rid: str) -> dict[str, Any]:
    return {"overdraft_limit_micros": 0, "model": "fake/cheap", "estimated": False, "key_id": rid}


def test_spool_appends_marks_done_and_compacts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "deep" / "spool")
    spool.append("r1", "acct", 10, _kw("r1"))
    spool.append("r2", "acct", 20, _kw("r2"))
    assert spool.path is not None and spool.path.name.endswith(".jsonl")
    assert stat.S_IMODE(os.stat(spool.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "deep" / "spool").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "deep").st_mode) == 0o700
    spool.done("r1")
    data = spool.path.read_bytes()
    assert [r["rid"] for r in read_pending(data)] == ["r2"]
    assert read_pending(data)[0] == {"rid": "r2", "account": "acct", "cost": 20, "kw": _kw("r2")}
    spool.done("r2")  # nothing outstanding: the file is emptied
    assert spool.path.read_bytes() == b"" and spool.outstanding == 0
    spool.append("r3", "acct", 30, _kw("r3"))
    assert [r["rid"] for r in read_pending(spool.path.read_bytes())] == ["r3"]
    spool.done("r3")
    path = spool.path
    spool.close()
    assert not path.exists()  # empty at close: removed


def test_a_torn_last_line_is_skipped() -> None:
    good = json.dumps({"rid": "a", "account": "x", "cost": 1, "kw": {}}).encode()
    assert [r["rid"] for r in read_pending(good + b"\n" + good[:20])] == ["a"]


_FSIZE_CHILD = """
import json, resource, signal, sys
from dexto.gateway.spool import Spool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
spool = Spool(sys.argv[1])
kw = {"overdraft_limit_micros": 0, "model": "fake/cheap", "estimated": False}
spool.append("req_a", "acct", 10, kw)
spool.append("req_x", "acct", 10, kw)
assert spool.path is not None
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (spool.path.stat().st_size + 10, hard))
failed = []
for rid in ("req_b", "done:req_x"):
    try:
        spool.done("req_x") if rid.startswith("done:") else spool.append(rid, "acct", 20, kw)
    except OSError as exc:
        failed.append((rid, exc.errno))
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space is back
spool.append("req_c", "acct", 30, kw)
print(json.dumps({"path": str(spool.path), "failed": failed}))
"""


def test_a_write_that_fails_part_way_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    """A file size limit cuts a record and a done line part-way (as a full disk does): each
    fragment is cut back, so the record written once space is back is read, and the one that
    failed is not."""
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert [rid for rid, _ in doc["failed"]] == ["req_b", "done:req_x"]
    data = Path(doc["path"]).read_bytes()
    assert data.count(b"\n") == 3 and data.endswith(b"\n")  # req_a, req_x, req_c: no fragment
    # req_x's done line was not written: it is replayed (a no-op once it landed)
    assert [r["rid"] for r in read_pending(data)] == ["req_a", "req_x", "req_c"]


def test_claim_replays_only_files_whose_worker_is_gone(tmp_path: Path, sqlite_url: str) -> None:
    db = Database(sqlite_url)
    migrate(db)
    conn = db.connect()
    acct, kh = _account(conn, "spool@example.com")
    for rid in ("a1", "a2", "b1"):
        assert ledger.admit(conn, kh, rid, 1_000, ttl_ms=60_000).status == "ok"
    directory = tmp_path / "spool"
    dead, alive = Spool(directory), Spool(directory)
    dead.append("a1", acct, 300, _kw("a1"))
    dead.append("a2", acct, 400, _kw("a2"))
    alive.append("b1", acct, 500, _kw("b1"))
    assert dead.path is not None and alive.path is not None
    # The "alive" file's lock moves to another process (its worker), the "dead" one's is freed.
    os.close(alive._fd)  # type: ignore[arg-type]
    alive._fd = None
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(alive.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    dead_path = dead.path
    os.close(dead._fd)  # type: ignore[arg-type]
    dead._fd = None
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        settled: list[str] = []
        failures: list[Exception] = []
        refuse = {"a2"}

        async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
            if rid in refuse:
                raise ConnectionError("database away")
            settled.append(rid)
            return ledger.settle(conn, rid, account, cost, **kw)

        def claim() -> int:
            return asyncio.run(claim_orphans(directory, settle, on_error=failures.append))

        assert claim() == 1  # a1 lands, a2 fails: the file stays, a1 marked done in it
        assert settled == ["a1"] and len(failures) == 1 and dead_path.exists()
        assert [r["rid"] for r in read_pending(dead_path.read_bytes())] == ["a2"]
        refuse.clear()
        assert claim() == 1  # a2 lands now; the file is removed
        assert settled == ["a1", "a2"]
        assert not dead_path.exists() and alive.path.exists()
        locker.kill()  # the live worker dies: its file becomes claimable
        locker.wait(timeout=30)
        assert claim() == 1
        assert not alive.path.exists() and settled == ["a1", "a2", "b1"]
    finally:
        if locker.poll() is None:
            locker.kill()
        locker.communicate(timeout=30)
    charges = _rows(
        conn, "SELECT request_id, -amount_micros FROM ledger WHERE kind = 'charge' ORDER BY 1"
    )
    assert charges == [("a1", 300), ("a2", 400), ("b1", 500)]
    assert _rows(conn, "SELECT COUNT(*) FROM holds") == [(0,)]
    db.close_all()


def test_the_worker_own_locked_file_is_not_claimed_by_itself(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append("r1", "acct", 10, _kw("r1"))

    async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
        raise AssertionError("claimed a live file")

    assert asyncio.run(claim_orphans(tmp_path, settle, on_error=lambda e: None)) == 0
    spool.close()
    assert spool.path is not None and spool.path.exists()  # outstanding: kept for a replay


def test_settle_after_release_or_sweep_still_charges_once(conn: Conn) -> None:
    acct, kh = _account(conn, f"gone-{id(conn)}@example.com")
    past = ledger.now_ms() - 10_000
    assert ledger.admit(conn, kh, "released", 1_000, ttl_ms=60_000).status == "ok"
    assert ledger.admit(conn, kh, "swept", 1_000, ttl_ms=1, now=past).status == "ok"
    assert ledger.release(conn, "released")
    assert ledger.sweep_expired(conn) == 1  # "swept" delivered nothing: released by the sweeper
    for rid in ("released", "swept"):
        first = ledger.settle(conn, rid, acct, 700, overdraft_limit_micros=0)
        assert (first.charged_micros, first.duplicate) == (700, False)
        again = ledger.settle(conn, rid, acct, 700, overdraft_limit_micros=0)
        assert (again.charged_micros, again.duplicate) == (0, True)
    assert _rows(conn, "SELECT balance_micros FROM accounts WHERE id = ?", (acct,)) == [
        (100_000 - 1_400,)
    ]


def test_sweeper_settle_records_the_sweep_in_the_same_transaction(conn: Conn) -> None:
    acct, kh = _account(conn, f"swept-{id(conn)}@example.com")
    past = ledger.now_ms() - 10_000
    for rid in ("ok", "boom"):
        assert ledger.admit(conn, kh, rid, 2_000, ttl_ms=1, now=past).status == "ok"
    if conn.dialect == "sqlite":
        trigger = [
            "CREATE TRIGGER no_sweep BEFORE INSERT ON swept_holds WHEN NEW.request_id = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
    else:
        trigger = [
            "CREATE FUNCTION no_sweep() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'refused'; END$$",
            "CREATE TRIGGER no_sweep BEFORE INSERT ON swept_holds FOR EACH ROW"
            " WHEN (NEW.request_id = 'boom') EXECUTE FUNCTION no_sweep()",
        ]
    with conn.write():
        for sql in trigger:
            conn.execute(sql)
    now = ledger.now_ms()
    res = ledger.settle(
        conn, "ok", acct, 900, overdraft_limit_micros=0, expired_before=now, swept_reason="why"
    )
    assert res.charged_micros == 900
    assert _rows(conn, "SELECT request_id, amount_micros, action, reason FROM swept_holds") == [
        ("ok", 2_000, "settled", "why")
    ]
    # A failing swept_holds insert takes the whole settlement back with it.
    with pytest.raises(Exception, match="refused"):
        ledger.settle(
            conn, "boom", acct, 900, overdraft_limit_micros=0, expired_before=now, swept_reason="x"
        )
    assert _rows(conn, "SELECT request_id FROM holds") == [("boom",)]
    assert _rows(conn, "SELECT COUNT(*) FROM ledger WHERE request_id = 'boom'") == [(0,)]
    assert _rows(conn, "SELECT balance_micros FROM accounts WHERE id = ?", (acct,)) == [
        (100_000 - 900,)
    ]


def test_spool_dir_setting_defaults_and_precedence(tmp_path: Path) -> None:
    from dexto.gateway.settings import GatewaySettings

    home = {"DEXTO_HOME": str(tmp_path / "home")}
    lite = GatewaySettings.resolve({"db_url": f"sqlite:///{tmp_path}/g.db"}, env=home)
    assert lite.spool_dir == str(tmp_path / "g.db.spool")
    pg = [
        GatewaySettings.resolve({"db_url": url}, env=home).spool_dir
        for url in (
            "postgresql://u:one@db.example:5432/app",
            "postgresql://u:two@db.example:5432/app",  # the password does not matter
            "postgresql://u:one@db.example:5432/other",
        )
    ]
    assert pg[0] == pg[1] != pg[2]
    assert Path(str(pg[0])).parent == tmp_path / "home" / "gateway-spool"
    env = {**home, "DEXTO_GATEWAY_SPOOL_DIR": "/srv/spool"}
    assert GatewaySettings.resolve({}, env=env).spool_dir == "/srv/spool"
    assert GatewaySettings.resolve({"spool_dir": "/flag"}, env=env).spool_dir == "/flag"
    assert GatewaySettings.resolve({}, env=env).to_env()["DEXTO_GATEWAY_SPOOL_DIR"] == "/srv/spool"


_STUCK = """
import fcntl, os, sys
from dexto.gateway.spool import Spool

real_flock = fcntl.flock

def stuck(*args):
    print("stuck", flush=True)
    sys.stdin.read()

def flock(fd, op):
    if op == fcntl.LOCK_EX | fcntl.LOCK_NB:  # the new file's own lock
        stuck()
    real_flock(fd, op)

if sys.argv[2] == "lock":
    fcntl.flock = flock
else:
    os.rename = stuck
Spool(sys.argv[1]).append("r1", "acct", 10, {})
"""


def _tmp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(".settle-*.tmp"))


def _claim(directory: Path) -> tuple[int, list[str]]:
    settled: list[str] = []

    async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
        settled.append(rid)
        return None

    n = asyncio.run(claim_orphans(directory, settle, on_error=lambda e: None))
    return n, settled


@pytest.mark.parametrize("stage", ["lock", "rename"])
def test_a_worker_killed_while_creating_its_file_leaves_a_tmp_file_removed_once_dead(
    tmp_path: Path, stage: str
) -> None:
    """A real worker stopped while creating its spool file (before it locks it, or before it
    renames it): while it lives (it holds the creation lock) the replay leaves the .tmp file;
    once it is SIGKILLed the replay removes it (it holds nothing: records follow the rename)."""
    directory = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK, str(directory), stage],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"stuck\n"
        (name,) = _tmp_files(directory)
        assert _claim(directory) == (0, [])
        assert _tmp_files(directory) == [name]
        assert clean_stale_tmp(directory) == (0, 0) and _tmp_files(directory) == [name]
        proc.kill()
        proc.wait(timeout=30)
        assert _claim(directory) == (0, [])
        assert _tmp_files(directory) == [] and not list(directory.glob("*.jsonl"))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    # A new worker creates its file as usual afterwards.
    spool = Spool(directory)
    spool.append("r2", "acct", 20, _kw("r2"))
    assert spool.path is not None and spool.path.parent == directory
    spool.done("r2")
    spool.close()


def test_a_tmp_file_locked_by_a_live_process_is_left(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    tmp = directory / ".settle-1-aaaa.tmp"
    tmp.write_bytes(b"")
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(tmp)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        assert clean_stale_tmp(directory) == (0, 0)
        assert _claim(directory) == (0, []) and tmp.exists()
        locker.kill()
        locker.wait(timeout=30)
        assert clean_stale_tmp(directory) == (0, 1) and not tmp.exists()
    finally:
        if locker.poll() is None:
            locker.kill()
        locker.communicate(timeout=30)


def test_a_stale_tmp_file_with_records_is_recovered_and_replayed(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    line = {"rid": "t1", "account": "acct", "cost": 5, "kw": _kw("t1")}
    done = {"rid": "t2", "account": "acct", "cost": 6, "kw": _kw("t2")}
    (directory / ".settle-7-bbbb.tmp").write_bytes(
        b"".join(json.dumps(d).encode() + b"\n" for d in (line, done, {"done": "t2"}))
        + b'{"rid": "t3", "acc'  # a torn last line is not a record
    )
    (directory / ".settle-8-cccc.tmp").write_bytes(b'{"rid": "x", "acc')  # torn only
    (directory / "unrelated.tmp").write_bytes(b"kept")
    assert _claim(directory) == (1, ["t1"])  # recovered, replayed, then removed
    assert _tmp_files(directory) == [] and not list(directory.glob("*.jsonl"))
    assert (directory / "unrelated.tmp").read_bytes() == b"kept"


def test_clean_stale_tmp_without_the_directory_does_nothing(tmp_path: Path) -> None:
    assert clean_stale_tmp(tmp_path / "missing") == (0, 0)


def test_a_failing_tmp_clean_up_does_not_stop_the_replay(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    dead = Spool(directory)
    dead.append("j1", "acct", 5, _kw("j1"))
    os.close(dead._fd)  # type: ignore[arg-type]
    dead._fd = None
    (directory / ".settle-9-dddd.tmp").write_bytes(b"")
    (directory / ".create.lock").unlink()
    (directory / ".create.lock").mkdir()  # cannot be opened as the lock: the clean-up fails
    errors: list[Exception] = []
    settled: list[str] = []

    async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
        settled.append(rid)
        return None

    assert asyncio.run(claim_orphans(directory, settle, on_error=errors.append)) == 1
    assert settled == ["j1"] and [type(e) for e in errors] == [IsADirectoryError]
    assert _tmp_files(directory) == [".settle-9-dddd.tmp"]
