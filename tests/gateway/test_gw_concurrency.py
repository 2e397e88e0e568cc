"""Hundreds of concurrent requests on an account that can afford a few dozen.

On SQLite and PostgreSQL (and two gateway worker processes on one PostgreSQL): the ledger sum
equals the balance change exactly, the overdraft bound holds, no request is charged twice and no
hold is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gwhelpers import (
    UPSTREAM_KEY,
    Gateway,
    chat_body,
    ledger_state,
    make_account,
    start_gateway,
    wait_healthy,
)

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import free_port
from dexto.gateway.pricing import ModelPrice, guard_estimate

N = 300
START = 10_000  # $0.01
L = 5_000  # overdraft limit for these gateways


def _hold(body: dict[str, Any]) -> int:
    price = ModelPrice(
        prompt=__import__("decimal").Decimal("0.000001"),
        completion=__import__("decimal").Decimal("0.000002"),
        max_completion_tokens=1000,
    )
    return guard_estimate(
        len(json.dumps(body).encode()),
        body.get("max_tokens"),
        price,
        min_hold=1_000,
        default_max_tokens=4096,
        unknown_model_hold=50_000,
    )


async def _fire(url: str, key: str, body: dict[str, Any], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one() -> httpx.Response:
            return await client.post(
                url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )

        return await asyncio.gather(*(one() for _ in range(n)))


def _check(
    responses: list[httpx.Response], db_url: str, account_id: str, *, cost: int, hold: int
) -> tuple[int, int]:
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 402}, (statuses, responses[0].text)
    ok = [r for r in responses if r.status_code == 200]
    state = ledger_state(db_url, account_id)
    # the ledger explains the balance exactly
    assert state.balance == state.ledger_sum
    assert state.balance - START == sum(c[1] for c in state.charges)
    # one charge per answered request, none twice, nothing for refused ones
    charged_ids = [c[0] for c in state.charges]
    assert len(charged_ids) == len(set(charged_ids)) == len(ok)
    assert set(charged_ids) == {r.headers["x-request-id"] for r in ok}
    # the charge is the upstream cost, up to the floor (-L); the rest is written off
    assert all(-c[1] + c[2] == cost for c in state.charges)
    assert state.balance >= -L
    assert state.holds == 0
    return len(ok), state.balance


def _body(cost_usd: float) -> dict[str, Any]:
    return chat_body("fake/cheap", max_tokens=100, fake={"cost": cost_usd})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def gw(db_url: str, fake: tuple[FakeUpstream, str]) -> Iterator[Gateway]:
    with start_gateway(
        db_url, fake[1], credits_micros=START, overdraft_limit_micros=L, db_pool_size=6
    ) as g:
        yield g


def test_cost_equal_to_hold_admits_exactly_what_is_affordable(gw: Gateway) -> None:
    body = _body(0)
    hold = _hold(body)
    body = _body(hold / 1e6)  # upstream reports exactly the hold as the cost
    assert _hold(body) == hold
    responses = asyncio.run(_fire(gw.url, gw.key, body, N))
    ok, balance = _check(responses, gw.db_url, gw.account_id, cost=hold, hold=hold)
    assert ok == START // hold  # a few dozen, whatever the interleaving
    assert balance == START - ok * hold >= 0


def test_costs_above_the_hold_stop_at_the_overdraft_floor(gw: Gateway) -> None:
    body = _body(0.003)  # 3000 micro-USD per request, ~10x the hold
    hold = _hold(body)
    assert hold < 3_000
    responses = asyncio.run(_fire(gw.url, gw.key, body, N))
    ok, balance = _check(responses, gw.db_url, gw.account_id, cost=3_000, hold=hold)
    assert 1 <= ok <= START // hold
    assert -L <= balance < 0


@pytest.mark.slow
@pytest.mark.postgres
def test_two_worker_processes_on_one_postgres(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    account_id, key = make_account(pg_url, "two@example.com", START)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_GATEWAY_")}
    env.update(
        {
            "DEXTO_GATEWAY_UPSTREAM_KEY": UPSTREAM_KEY,
            "DEXTO_GATEWAY_RATE_LIMIT_RPS": "0",
            "DEXTO_GATEWAY_OVERDRAFT_LIMIT_MICROS": str(L),
            "DEXTO_GATEWAY_DB_POOL_SIZE": "4",
        }
    )
    log = (tmp_path / "gw.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dexto.cli.main",
            "gateway",
            "serve",
            "--db",
            pg_url,
            "--upstream",
            fake[1],
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log_path=tmp_path / "gw.log", timeout=30)
        body = _body(0.003)
        responses = asyncio.run(_fire(url, key, body, N))
        ok, balance = _check(responses, pg_url, account_id, cost=3_000, hold=_hold(body))
        assert ok >= 1 and -L <= balance < 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gw.log").read_text()
