"""Helpers shared by the gateway tests (imported by conftest and test modules)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway import admin
from dexto.gateway.app import create_app
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate
from dexto.gateway.settings import GatewaySettings

UPSTREAM_KEY = "sk-or-v1-UPSTREAMSECRET-0123456789abcdef"


def wait_healthy(
    url: str,
    proc: subprocess.Popen[Any] | None = None,
    *,
    log_path: Path | None = None,
    path: str = "/healthz",
    timeout: float = 60.0,
) -> None:
    """Poll ``url + path`` until it answers 200. Fails at once when ``proc`` has exited, and at
    ``timeout`` seconds; either failure shows the process's log when ``log_path`` is given."""

    def log() -> str:
        return log_path.read_text() if log_path is not None else ""

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as c:
        while True:
            try:
                if c.get(url + path).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode} before {path}: {log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}{path} did not answer 200 in {timeout} s: {log()}")
            time.sleep(0.1)


@dataclass
class Gateway:
    url: str
    key: str
    account_id: str
    db_url: str
    settings: GatewaySettings
    fake: FakeUpstream | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


def make_account(db_url: str, email: str, credits_micros: int) -> tuple[str, str]:
    db = Database(db_url)
    migrate(db)
    conn = db.connect()
    try:
        res = admin.create_account(conn, email, credits_micros=credits_micros)
    finally:
        db.close_all()
    return res["account"]["id"], res["apiKey"]


def settings_for(db_url: str, upstream_url: str, **overrides: Any) -> GatewaySettings:
    base = GatewaySettings.resolve(
        {"db_url": db_url, "upstream_url": upstream_url, "upstream_key": UPSTREAM_KEY}, env={}
    )
    defaults: dict[str, Any] = {"rate_limit_rps": 0.0, "upstream_timeout_s": 10.0}
    return base.with_overrides(**{**defaults, **overrides})


@contextmanager
def start_gateway(
    db_url: str,
    upstream_url: str,
    *,
    credits_micros: int = 1_000_000,
    fake: FakeUpstream | None = None,
    email: str = "user@example.com",
    **overrides: Any,
) -> Iterator[Gateway]:
    account_id, key = make_account(db_url, email, credits_micros)
    settings = settings_for(db_url, upstream_url, **overrides)
    with ServerThread(create_app(settings)) as srv:
        yield Gateway(srv.url, key, account_id, db_url, settings, fake)


@dataclass
class LedgerState:
    balance: int
    ledger_sum: int
    charges: list[tuple[str, int, int, int]]  # request_id, amount, written_off, estimated
    holds: int
    credits: int


def ledger_state(db_url: str, account_id: str) -> LedgerState:
    db = Database(db_url)
    conn = db.connect()
    try:
        with conn.read():
            bal = conn.one("SELECT balance_micros FROM accounts WHERE id = ?", (account_id,))
            total = conn.one(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE account_id = ?",
                (account_id,),
            )
            credits = conn.one(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger"
                " WHERE account_id = ? AND kind = 'credit'",
                (account_id,),
            )
            charges = conn.all(
                "SELECT request_id, amount_micros, written_off_micros, estimated FROM ledger"
                " WHERE account_id = ? AND kind = 'charge'",
                (account_id,),
            )
            holds = conn.one("SELECT COUNT(*) FROM holds WHERE account_id = ?", (account_id,))
    finally:
        db.close_all()
    assert bal and total and holds and credits
    return LedgerState(
        int(bal[0]),
        int(total[0]),
        [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in charges],
        int(holds[0]),
        int(credits[0]),
    )


def make_user(db_url: str, email: str, password: str) -> str:
    """An account that can sign in on the device page; returns its id."""
    db = Database(db_url)
    try:
        return str(admin.create_account(db.connect(), email, password=password)["account"]["id"])
    finally:
        db.close_all()


def device_csrf(c: httpx.Client) -> str:
    """The CSRF token of the device page (its cookie is kept by ``c``)."""
    m = re.search(r'name="csrf" value="([^"]+)"', c.get("/device").text)
    assert m is not None
    return m.group(1)


def chat_body(model: str = "openai/gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
