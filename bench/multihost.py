"""Scale-out benchmark: SQLite vs PostgreSQL, one worker vs two, one hot account vs 16, one
host vs two hosts (separate processes on 127.0.0.2 and 127.0.0.3 sharing one PostgreSQL schema
and one Redis key prefix), all started at once and measured in interleaved rounds.

    .venv/bin/python bench/multihost.py [--quick] [--rounds N] [--netns] [--pg URL] [--redis URL]

Configurations (non-streaming, concurrency 32, all behind the same fake upstream):
  sqlite-1w        SQLite, 1 worker, 16 accounts
  pg-1w            PostgreSQL, 1 worker, 16 accounts
  pg-2w-hot        PostgreSQL, 2 workers (one host), every request on one account
  pg-2w-16acct     the same server, requests spread over 16 accounts
  pg-2hosts        PostgreSQL, two hosts × 1 worker, 16 accounts, load split between the hosts
Every gateway uses the Redis rate limiter (limits far above the load; local-first leasing) when
Redis answers, else its in-process limiter (printed). For each configuration: req/s, gateway CPU
ms per request (utime+stime of its process trees from /proc) and PostgreSQL server CPU ms per
request (the backends whose application_name names the configuration), min/median/max over the
rounds. Rounds run the configurations one after another in a rotating order, so machine noise is
shared. Every loop is bounded by a request count. Needs PostgreSQL and Redis.

With ``--netns`` (root and iproute2), the two hosts of ``pg-2hosts`` run in two network
namespaces made for the run (``ip netns add``, a veth pair each to the root namespace on a
private /30, removed afterwards), reaching the root namespace's loopback-only PostgreSQL, Redis
and fake upstream through a TCP forwarder process on the veths' root-side addresses (its CPU per
request is printed; it is not counted as gateway CPU). The load still comes from the root
namespace. Without ``--netns`` everything is on loopback.

After the rounds, the ledger is checked: every request answered 200 on PostgreSQL has exactly
one charge, no hold is left, and every account's balance equals the sum of its ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gateway"))

from _gwproc import netns_problem, network_namespaces, tcp_forwarder, via  # noqa: E402

from _gateway_load import LoadResult, _worker, build_request, chat_body  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream  # noqa: E402

PY = sys.executable
HOSTS = ("127.0.0.2", "127.0.0.3")
ACCOUNTS = 16
PG_DEFAULT = os.environ.get("DEXTO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_DEFAULT = os.environ.get("DEXTO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Config:
    name: str
    procs: list[Proc]
    targets: list[tuple[str, int]]  # (address, port) the load is split across
    keys: list[str]  # API keys the connections use, round-robin
    app_name: str | None  # PostgreSQL application_name of its backends (None: SQLite)
    rounds: list[dict[str, float]] = field(default_factory=list)


def with_params(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


def make_accounts(db_url: str, n: int, tag: str) -> list[str]:
    from dexto.gateway import admin
    from dexto.gateway.db import Database
    from dexto.gateway.migrations import migrate

    db = Database(db_url)
    migrate(db)
    conn = db.connect()
    try:
        return [
            admin.create_account(conn, f"{tag}{i}@bench.example", credits_micros=10**12)["apiKey"]
            for i in range(n)
        ]
    finally:
        db.close_all()


def wait_ready(addr: str, port: int, proc: Proc, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"gateway exited during start-up; see {proc.log}")
        try:
            with httpx.Client(timeout=2) as c:
                if c.get(f"http://{addr}:{port}/healthz").status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gateway on {addr}:{port} not ready; see {proc.log}")


def serve_gateway(
    name: str,
    db: str,
    addr: str,
    workers: int,
    *,
    env: dict[str, str],
    upstream: str,
    work: Path,
    redis_url: str | None,
    redis_prefix: str,
    argv_prefix: tuple[str, ...] = (),
) -> tuple[Proc, int]:
    """``dexto gateway serve`` on ``addr`` (run under ``argv_prefix``), limits far above the
    load, Redis limiter when ``redis_url``: (process, port). Not waited for (``wait_ready``)."""
    port = free_port()
    gw_env = {
        **env,
        "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-bench-upstream",
        "DEXTO_GATEWAY_RATE_LIMIT_RPS": "1000000",
        "DEXTO_GATEWAY_RATE_LIMIT_BURST": "1000000",
        "DEXTO_GATEWAY_LOG_LEVEL": "WARNING",
        "DEXTO_GATEWAY_DB_POOL_SIZE": "8",
    }
    if redis_url:
        gw_env["DEXTO_GATEWAY_REDIS_URL"] = redis_url
        gw_env["DEXTO_GATEWAY_REDIS_PREFIX"] = redis_prefix
    argv = [*argv_prefix, PY, "-m", "dexto.cli.main", "gateway", "serve", "--db", db]
    argv += ["--host", addr, "--port", str(port), "--workers", str(workers)]
    argv += ["--upstream", upstream]
    return Proc(argv, gw_env, work / f"{name}-{addr}.log"), port


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pg_backend_cpu(pg_base: str, app_name: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend whose application_name is ``app_name``."""
    import psycopg

    with psycopg.connect(pg_base, autocommit=True) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name,)
            )
        ]
    return {pid: proc_cpu_seconds(pid) for pid in pids}


def load(cfg: Config, concurrency: int, total: int) -> LoadResult:
    b = chat_body()
    requests = [
        (
            addr,
            port,
            build_request(
                addr, port, "/v1/chat/completions", b, {"Authorization": f"Bearer {key}"}
            ),
        )
        for addr, port in cfg.targets
        for key in cfg.keys
    ]

    async def main() -> LoadResult:
        result = LoadResult()
        counter = [0]
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                _worker(
                    *requests[i % len(requests)][:2],
                    requests[i % len(requests)][2],
                    counter,
                    total,
                    result,
                )
                for i in range(concurrency)
            )
        )
        result.elapsed = time.perf_counter() - t0
        return result

    return asyncio.run(main())


def measure(
    cfg: Config, pg_base: str, concurrency: int, total: int, extra_pids: tuple[int, ...] = ()
) -> dict[str, float]:
    """One load on ``cfg``: req/s, gateway and PostgreSQL CPU ms per request, errors, requests
    answered 200, and ``extra_ms`` (CPU ms per request of ``extra_pids``, e.g. a forwarder)."""
    pg0 = pg_backend_cpu(pg_base, cfg.app_name) if cfg.app_name else {}
    cpu0 = sum(p.cpu_seconds() for p in cfg.procs)
    x0 = sum(proc_cpu_seconds(p) for p in extra_pids)
    res = load(cfg, concurrency, total)
    cpu1 = sum(p.cpu_seconds() for p in cfg.procs)
    x1 = sum(proc_cpu_seconds(p) for p in extra_pids)
    pg1 = pg_backend_cpu(pg_base, cfg.app_name) if cfg.app_name else {}
    done = len(res.latencies) or 1
    pg_cpu = sum(pg1[p] - pg0[p] for p in pg1 if p in pg0)
    return {
        "rps": res.rps,
        "gw_cpu_ms": (cpu1 - cpu0) * 1000 / done,
        "pg_cpu_ms": pg_cpu * 1000 / done if cfg.app_name else float("nan"),
        "extra_ms": (x1 - x0) * 1000 / done if extra_pids else float("nan"),
        "errors": float(res.errors),
        "ok": float(len(res.latencies)),
    }


def check_ledger(pg_schema: str, answered: int, timeout: float = 30) -> str:
    """One line: charges vs ``answered`` requests, holds left, accounts whose balance is not
    the sum of their ledger (waits, bounded, for settlements still under way)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(pg_schema, autocommit=True) as conn:
            charges = _count(conn, "SELECT COUNT(*) FROM ledger WHERE kind = 'charge'")
            holds = _count(conn, "SELECT COUNT(*) FROM holds")
            drift = _count(
                conn,
                "SELECT COUNT(*) FROM accounts a WHERE a.balance_micros <> (SELECT"
                " COALESCE(SUM(l.amount_micros), 0) FROM ledger l WHERE l.account_id = a.id)",
            )
        if (charges == answered and holds == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ok = charges == answered and holds == 0 and drift == 0
    return (
        f"ledger {'exact' if ok else 'NOT EXACT'}: {answered} requests answered 200 on "
        f"PostgreSQL, {charges} charges, {holds} holds left, {drift} accounts whose balance "
        "differs from their ledger sum"
    )


def _count(conn: Any, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def spread(xs: list[float]) -> str:
    if not xs or all(x != x for x in xs):
        return "-"
    return f"{min(xs):.2f}/{statistics.median(xs):.2f}/{max(xs):.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=0, help="per configuration per round")
    ap.add_argument("--netns", action="store_true", help="the two hosts in network namespaces")
    ap.add_argument("--pg", default=PG_DEFAULT)
    ap.add_argument("--redis", default=REDIS_DEFAULT)
    args = ap.parse_args()
    total = args.requests or (300 if args.quick else 1500)
    if args.netns and (problem := netns_problem()):
        print(f"--netns: {problem}", file=sys.stderr)
        return 2
    import psycopg
    import redis

    work = Path(tempfile.mkdtemp(prefix="dexto-bench-mh-"))
    tag = uuid.uuid4().hex[:10]
    schema = f"dexto_bench_{tag}"
    prefix = f"dexto-bench:{tag}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    redis_url: str | None = args.redis
    try:
        redis.Redis.from_url(args.redis, socket_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"Redis not reachable ({type(exc).__name__}): in-process rate limiters")
        redis_url = None
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    pg_schema = with_params(args.pg, options=f"-csearch_path%3D{schema}")
    procs: list[Proc] = []
    configs: list[Config] = []
    extra: tuple[int, ...] = ()
    ledger_line = ""
    try:
        with ExitStack() as stack:
            fake, up_port = start_fake_upstream(PY, env, work)
            procs.append(fake)
            upstream = f"http://127.0.0.1:{up_port}/api/v1"
            sqlite_url = f"sqlite:///{work / 'gateway.db'}"
            sqlite_keys = make_accounts(sqlite_url, ACCOUNTS, "s")
            pg_keys = make_accounts(pg_schema, ACCOUNTS + 1, "p")
            hot, many = pg_keys[:1], pg_keys[1:]
            common: dict[str, Any] = {"env": env, "work": work, "redis_prefix": prefix}

            def serve(
                name: str, db: str, addr: str, workers: int, **kw: Any
            ) -> tuple[Proc, str, int]:
                kw = {"upstream": upstream, "redis_url": redis_url, **common, **kw}
                proc, port = serve_gateway(name, db, addr, workers, **kw)
                procs.append(proc)
                return proc, addr, port

            def pg_for(app: str) -> str:
                return with_params(pg_schema, application_name=app)

            s1 = serve("sqlite-1w", sqlite_url, HOSTS[0], 1)
            p1 = serve("pg-1w", pg_for(f"bench-pg1-{tag}"), HOSTS[0], 1)
            p2 = serve("pg-2w", pg_for(f"bench-pg2-{tag}"), HOSTS[0], 2)
            two: list[tuple[Proc, str, int]] = []
            if args.netns:
                hosts = stack.enter_context(network_namespaces(2))
                targets = [_target(args.pg), _target(upstream)]
                targets += [_target(redis_url)] if redis_url else []
                fwd = stack.enter_context(tcp_forwarder([h.root_addr for h in hosts], targets))
                extra = (fwd.pid,)
                for h in hosts:
                    two.append(
                        serve(
                            "pg-2hosts",
                            via(pg_for(f"bench-pgh-{tag}"), h.root_addr, fwd.ports),
                            h.addr,
                            1,
                            upstream=via(upstream, h.root_addr, fwd.ports),
                            redis_url=via(redis_url, h.root_addr, fwd.ports) if redis_url else None,
                            argv_prefix=h.exec_prefix,
                        )
                    )
            else:
                for addr in HOSTS:
                    two.append(serve("pg-2hosts", pg_for(f"bench-pgh-{tag}"), addr, 1))
            for proc, addr, port in [s1, p1, p2, *two]:
                wait_ready(addr, port, proc)
            configs = [
                Config("sqlite-1w", [s1[0]], [s1[1:]], sqlite_keys, None),
                Config("pg-1w", [p1[0]], [p1[1:]], many, f"bench-pg1-{tag}"),
                Config("pg-2w-hot", [p2[0]], [p2[1:]], hot, f"bench-pg2-{tag}"),
                Config("pg-2w-16acct", [p2[0]], [p2[1:]], many, f"bench-pg2-{tag}"),
                Config(
                    "pg-2hosts-netns" if args.netns else "pg-2hosts",
                    [t[0] for t in two],
                    [t[1:] for t in two],
                    many,
                    f"bench-pgh-{tag}",
                ),
            ]
            answered = 0
            for cfg in configs:  # warm-up: connections, caches, pools
                res = load(cfg, 8, max(64, total // 10))
                answered += len(res.latencies) if cfg.app_name else 0
            for r in range(args.rounds):
                order = configs[r % len(configs) :] + configs[: r % len(configs)]
                for cfg in order:
                    x = extra if cfg is configs[-1] else ()
                    cfg.rounds.append(measure(cfg, args.pg, 32, total, x))
                    answered += int(cfg.rounds[-1]["ok"]) if cfg.app_name else 0
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
            ledger_line = check_ledger(pg_schema, answered)
            for p in reversed(procs):  # before the namespaces go
                p.stop()
    finally:
        for p in reversed(procs):
            p.stop()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()

    base = statistics.median(x["rps"] for x in configs[0].rounds)
    where = "two network namespaces" if args.netns else "127.0.0.2/.3"
    print(
        f"non-stream, c=32, {total} requests per configuration per round, {args.rounds} rounds "
        f"(interleaved, rotating order); limiter: {'Redis' if redis_url else 'in-process'}; "
        f"two hosts on {where}"
    )
    print(
        f"{'configuration':16} {'req/s min/med/max':>24} {'vs sqlite':>9} "
        f"{'gw CPU ms/req':>18} {'PG CPU ms/req':>18} {'errors':>6}"
    )
    out: list[dict[str, Any]] = []
    for cfg in configs:
        rps = [x["rps"] for x in cfg.rounds]
        print(
            f"{cfg.name:16} {spread(rps):>24} {statistics.median(rps) / base:9.2f} "
            f"{spread([x['gw_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{spread([x['pg_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{int(sum(x['errors'] for x in cfg.rounds)):6d}"
        )
        out.append({"configuration": cfg.name, "rounds": cfg.rounds})
    if extra:
        fwd_ms = spread([x["extra_ms"] for x in configs[-1].rounds])
        print(
            f"forwarder (PostgreSQL/Redis/upstream traffic of the namespaced hosts): "
            f"{fwd_ms} CPU ms/req, not counted above"
        )
    print(ledger_line)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"multihost-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"results: {target}")
    return 0 if ledger_line.startswith("ledger exact") else 1


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


if __name__ == "__main__":
    sys.exit(main())
