"""Two gateway hosts, each in its own network namespace (made by the test: ``ip netns add`` and a
veth pair to the root namespace on a private /30), sharing one PostgreSQL schema and one Redis
key prefix. The hosts reach the root namespace's loopback-only PostgreSQL, Redis and fake
upstream through a TCP forwarder the test runs on the veths' root-side addresses; the load comes
from the root namespace. Checked: one global rate limit (within the documented bound), an exact
ledger (every admitted request charged once, balance == sum of the ledger), and the hold of a
host SIGKILLed mid-stream settled by the other host's sweeper.

Needs root and iproute2: skipped otherwise, failed under ``DEXTO_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from _gwhelpers import chat_body, ledger_state, make_account
from _gwproc import (
    NsHost,
    bypassed,
    fire,
    gateway_host,
    host_env,
    netns_problem,
    network_namespaces,
    tcp_forwarder,
    via,
)

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.db import Database
from tests.gateway.conftest import PG_BASE, REDIS_BASE, REQUIRE_SERVICES

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

BURST = 24
LEASE = 4
RATE = 0.01  # refill per second: below one token over the test


@dataclass
class Net:
    hosts: list[NsHost]
    ports: dict[str, int]  # forwarder port per "host:port" target

    def reach(self, host: NsHost, url: str) -> str:
        """``url`` (a root-namespace loopback server) as seen from inside ``host``'s namespace."""
        return via(url, host.root_addr, self.ports)


def _netns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture
def net(fake: tuple[FakeUpstream, str]) -> Iterator[Net]:
    """Two namespaces and a forwarder to PostgreSQL, Redis and the fake upstream; namespaces,
    veths and the forwarder are removed afterwards, whatever happened."""
    problem = netns_problem()
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem} (DEXTO_REQUIRE_SERVICES=1)")
        pytest.skip(problem)
    with ExitStack() as stack:
        try:
            hosts = stack.enter_context(network_namespaces(2))
        except RuntimeError as exc:  # `ip` refused: no namespace support here
            if REQUIRE_SERVICES:
                pytest.fail(f"cannot create network namespaces: {exc} (DEXTO_REQUIRE_SERVICES=1)")
            pytest.skip(f"cannot create network namespaces: {exc}")
        targets = [_target(PG_BASE), _target(REDIS_BASE), _target(fake[1])]
        fwd = stack.enter_context(tcp_forwarder([h.root_addr for h in hosts], targets))
        yield Net(hosts, fwd.ports)


def test_two_namespaced_hosts_one_rate_limit_exact_ledger(
    net: Net,
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    credits = 100_000_000
    account_id, key = make_account(pg_url, "netns@example.com", credits)
    a_host, b_host = net.hosts
    settings = {
        "rate_limit_rps": str(RATE),
        "rate_limit_burst": str(BURST),
        "redis_lease_max": str(LEASE),
    }
    with (
        gateway_host(
            a_host.addr,
            net.reach(a_host, pg_url),
            net.reach(a_host, fake[1]),
            host_env(net.reach(a_host, redis_url), redis_prefix, **settings),
            tmp_path / "a.log",
            prefix=a_host.exec_prefix,
        ) as (a, proc_a),
        gateway_host(
            b_host.addr,
            net.reach(b_host, pg_url),
            net.reach(b_host, fake[1]),
            host_env(net.reach(b_host, redis_url), redis_prefix, **settings),
            tmp_path / "b.log",
            prefix=b_host.exec_prefix,
        ) as (b, proc_b),
    ):
        assert len({_netns(proc_a.pid), _netns(proc_b.pid), _netns(os.getpid())}) == 3  # all apart
        t0 = time.monotonic()
        results = asyncio.run(fire([a, b], key, 3 * BURST))
        results += asyncio.run(fire([b, a], key, BURST))
        elapsed = time.monotonic() - t0
        with httpx.Client() as c:
            skipped = sum(bypassed(c.get(u + "/metrics").text) for u in (a, b))
    statuses = [s for s, _ in results]
    print("DEBUG", statuses.count(200), elapsed, skipped)
    assert set(statuses) <= {200, 429}, statuses
    admitted_ids = {rid for s, rid in results if s == 200}
    admitted = statuses.count(200)
    assert len(admitted_ids) == admitted  # request ids are unique
    # documented bound: burst + rate * T + N * (lease - 1); the hosts start holding no lease.
    assert admitted <= BURST + int(RATE * elapsed) + 1 + skipped
    # each host may end holding lease - 1 unspent tokens; nothing else is lost
    assert admitted >= BURST - len(net.hosts) * (LEASE - 1)
    state = ledger_state(pg_url, account_id)
    assert state.credits == credits
    assert {rid for rid, *_ in state.charges} == admitted_ids  # each admitted one charged once
    assert len(state.charges) == admitted
    assert state.balance == state.ledger_sum  # zero drift: the balance is its ledger's sum
    assert credits - state.balance == -sum(amount for _, amount, _, _ in state.charges)
    assert state.holds == 0


def _rows(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = Database(db_url)
    try:
        conn = db.connect()
        with conn.read():
            return conn.all(sql, params)
    finally:
        db.close_all()


async def _stream_until_killed(url: str, key: str, started: asyncio.Event) -> str:
    """A slow stream (400 chunks, 50 ms apart) read until its host dies: its request id."""
    body = chat_body(
        stream=True,
        messages=[{"role": "user", "content": f"netns {uuid.uuid4().hex}"}],
        fake={"chunks": 400, "chunk_delay_ms": 50},
    )
    request_id = ""
    seen = b""
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            async with c.stream(
                "POST",
                url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                request_id = r.headers["x-request-id"]
                async for part in r.aiter_raw():
                    seen += part
                    if seen.count(b'"content"') >= 3:
                        started.set()
    except httpx.HTTPError:
        pass
    finally:
        started.set()
    return request_id


def test_hold_of_a_host_killed_mid_stream_is_swept_by_the_other_namespace(
    net: Net,
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
) -> None:
    credits = 100_000_000
    account_id, key = make_account(pg_url, "netns-killed@example.com", credits)
    settings = {"rate_limit_rps": "0", "hold_ttl_s": "2", "sweep_interval_s": "0.3"}
    a_host, b_host = net.hosts
    with (
        gateway_host(
            a_host.addr,
            net.reach(a_host, pg_url),
            net.reach(a_host, fake[1]),
            host_env(net.reach(a_host, redis_url), redis_prefix, **settings),
            tmp_path / "a.log",
            prefix=a_host.exec_prefix,
        ) as (a, proc_a),
        gateway_host(
            b_host.addr,
            net.reach(b_host, pg_url),
            net.reach(b_host, fake[1]),
            host_env(net.reach(b_host, redis_url), redis_prefix, **settings),
            tmp_path / "b.log",
            prefix=b_host.exec_prefix,
        ) as (b, _),
    ):

        async def scenario() -> tuple[str, int]:
            started = asyncio.Event()
            stream = asyncio.create_task(_stream_until_killed(a, key, started))
            await asyncio.wait_for(started.wait(), 30)
            delivered = 0
            for _ in range(200):  # bounded: until host A's hold records the delivery
                delivered = len(
                    _rows(pg_url, "SELECT 1 FROM holds WHERE delivered = 1 AND generation_id <> ''")
                )
                if delivered:
                    break
                await asyncio.sleep(0.05)
            proc_a.kill()  # SIGKILL mid-stream: no shutdown code runs on host A
            return await stream, delivered

        request_id, delivered = asyncio.run(scenario())
        proc_a.wait(timeout=30)
        assert request_id and delivered == 1
        assert ledger_state(pg_url, account_id).charges == []  # host A settled nothing
        charge: list[tuple[Any, ...]] = []
        for _ in range(300):  # bounded: host B's sweeper settles the expired hold
            charge = _rows(
                pg_url,
                "SELECT -amount_micros, estimated, settled_by FROM ledger WHERE request_id = ?",
                (request_id,),
            )
            if charge:
                break
            time.sleep(0.1)
        with httpx.Client(timeout=30) as c:
            after = c.post(
                b + "/v1/chat/completions",
                json=chat_body(),
                headers={"Authorization": f"Bearer {key}"},
            )
    assert charge, "host B did not sweep host A's hold"
    amount, estimated, settled_by = charge[0]
    # priced exactly from the upstream's generation record, by the sweeper (host B)
    assert amount > 0 and (estimated, settled_by) == (0, "sweeper")
    swept = _rows(
        pg_url, "SELECT action, reason FROM swept_holds WHERE request_id = ?", (request_id,)
    )
    assert [tuple(r) for r in swept] == [("settled", "swept:generation")]
    assert after.status_code == 200
    final = ledger_state(pg_url, account_id)
    assert final.holds == 0
    assert final.balance == final.ledger_sum  # exact: the balance is its ledger's sum
    assert len(final.charges) == 2  # the killed stream (by the sweeper) and host B's request
