"""Scale-out benchmark: SQLite vs PostgreSQL, one worker vs two, one hot account vs 16, one
host vs two hosts (separate processes on 127.0.0.2 and 127.0.0.3 sharing one PostgreSQL schema
and one Redis key prefix), all started at once and measured in interleaved rounds.

    .venv/bin/python bench/multihost.py [--quick] [--rounds N] [--netns] [--pg URL] [--redis URL]
        [--baseline REF]

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

With ``--baseline REF`` every configuration also runs from the ``src/`` tree of that git ref
(``git archive``, extracted to the run's directory; its own gateway processes with ``PYTHONPATH``
set to it, named ``…@REF``), interleaved in the same rounds. Its configurations use a
PostgreSQL schema and a SQLite file of their own, migrated and given accounts by that ref's code,
so each side runs against the schema its own migrations made.

After the rounds, the ledger of each PostgreSQL schema is checked: every request answered 200
there has exactly one charge, no hold is left, and every account's balance equals the sum of its
ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
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

from _gateway_load import LoadResult, _worker, build_request, chat_body, run_loop  # noqa: E402
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
    pg_schema: str | None = None  # URL of its PostgreSQL schema (None: SQLite)
    extra_pids: tuple[int, ...] = ()  # processes whose CPU is printed apart (the forwarder)
    rounds: list[dict[str, float]] = field(default_factory=list)


def with_params(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


_MAKE_ACCOUNTS = """
import json, sys
from dexto.gateway import admin
from dexto.gateway.db import Database
from dexto.gateway.migrations import migrate

url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = Database(url)
migrate(db)
conn = db.connect()
try:
    print(json.dumps([
        admin.create_account(conn, f"{tag}{i}@bench.example", credits_micros=10**12)["apiKey"]
        for i in range(n)
    ]))
finally:
    db.close_all()
"""


def make_accounts(
    db_url: str, n: int, tag: str, env: dict[str, str], src: Path | None = None
) -> list[str]:
    """Migrate ``db_url`` and create ``n`` accounts with ample credits: their API keys. Runs in
    a child process, with the code of ``src`` when given (else this checkout's)."""
    child_env = {**env, **({"PYTHONPATH": str(src)} if src else {})}
    out = subprocess.run(
        [PY, "-c", _MAKE_ACCOUNTS, db_url, str(n), tag],
        env=child_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keys: list[str] = json.loads(out)
    return keys


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
    src: Path | None = None,
) -> tuple[Proc, int]:
    """``dexto gateway serve`` on ``addr`` (run under ``argv_prefix``, with the code of ``src``
    when given), limits far above the load, Redis limiter when ``redis_url``: (process, port).
    Not waited for (``wait_ready``)."""
    port = free_port()
    gw_env = {
        **env,
        **({"PYTHONPATH": str(src)} if src else {}),
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

    return run_loop(main())


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


def source_tree(ref: str, work: Path) -> Path:
    """The ``src/`` directory of git ref ``ref``, extracted under ``work``."""
    root = Path(__file__).resolve().parent.parent
    out = work / f"src-{ref.replace('/', '_')}"
    out.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


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
    ap.add_argument("--baseline", metavar="REF", help="also run every configuration from REF")
    args = ap.parse_args()
    total = args.requests or (300 if args.quick else 1500)
    if args.netns and (problem := netns_problem()):
        print(f"--netns: {problem}", file=sys.stderr)
        return 2
    import psycopg
    import redis

    work = Path(tempfile.mkdtemp(prefix="dexto-bench-mh-"))
    tag = uuid.uuid4().hex[:10]
    prefix = f"dexto-bench:{tag}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    redis_url: str | None = args.redis
    try:
        redis.Redis.from_url(args.redis, socket_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"Redis not reachable ({type(exc).__name__}): in-process rate limiters")
        redis_url = None
    # (name suffix, source tree or None for this checkout); one PostgreSQL schema each
    variants: list[tuple[str, Path | None]] = [("", None)]
    if args.baseline:
        try:
            variants.append((f"@{args.baseline}", source_tree(args.baseline, work)))
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
            print(f"--baseline {args.baseline}: git archive failed: {err}", file=sys.stderr)
            return 2
    schemas = [f"dexto_bench_{tag}_{i}" for i in range(len(variants))]
    with psycopg.connect(args.pg, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    procs: list[Proc] = []
    configs: list[Config] = []
    extra: tuple[int, ...] = ()
    ledger_lines: list[tuple[str, bool]] = []
    try:
        with ExitStack() as stack:
            fake, up_port = start_fake_upstream(PY, env, work)
            procs.append(fake)
            upstream = f"http://127.0.0.1:{up_port}/api/v1"
            hosts: list[Any] = []
            fwd_ports: dict[str, int] = {}
            if args.netns:
                hosts = stack.enter_context(network_namespaces(2))
                targets = [_target(args.pg), _target(upstream)]
                targets += [_target(redis_url)] if redis_url else []
                fwd = stack.enter_context(tcp_forwarder([h.root_addr for h in hosts], targets))
                extra, fwd_ports = (fwd.pid,), fwd.ports
            ready: list[tuple[Proc, str, int]] = []
            for (suffix, src), schema in zip(variants, schemas, strict=True):
                sfx = suffix.replace("@", "-").replace("/", "_")
                pg_schema = with_params(args.pg, options=f"-csearch_path%3D{schema}")
                sqlite_url = f"sqlite:///{work / f'gateway{sfx}.db'}"
                sqlite_keys = make_accounts(sqlite_url, ACCOUNTS, "s", env, src)
                pg_keys = make_accounts(pg_schema, ACCOUNTS + 1, "p", env, src)
                hot, many = pg_keys[:1], pg_keys[1:]
                common: dict[str, Any] = {
                    "env": env,
                    "work": work,
                    "redis_prefix": prefix,
                    "src": src,
                }
                apps = {k: f"bench-{k}{sfx}-{tag}" for k in ("pg1", "pg2", "pgh")}

                def serve(
                    name: str,
                    db: str,
                    addr: str,
                    workers: int,
                    sfx: str = sfx,
                    common: dict[str, Any] = common,
                    **kw: Any,
                ) -> tuple[Proc, str, int]:
                    kw = {"upstream": upstream, "redis_url": redis_url, **common, **kw}
                    proc, port = serve_gateway(name + sfx, db, addr, workers, **kw)
                    procs.append(proc)
                    return proc, addr, port

                def pg_for(app: str, schema_url: str = pg_schema) -> str:
                    return with_params(schema_url, application_name=app)

                s1 = serve("sqlite-1w", sqlite_url, HOSTS[0], 1)
                p1 = serve("pg-1w", pg_for(apps["pg1"]), HOSTS[0], 1)
                p2 = serve("pg-2w", pg_for(apps["pg2"]), HOSTS[0], 2)
                two: list[tuple[Proc, str, int]] = []
                if args.netns:
                    for h in hosts:
                        two.append(
                            serve(
                                "pg-2hosts",
                                via(pg_for(apps["pgh"]), h.root_addr, fwd_ports),
                                h.addr,
                                1,
                                upstream=via(upstream, h.root_addr, fwd_ports),
                                redis_url=(
                                    via(redis_url, h.root_addr, fwd_ports) if redis_url else None
                                ),
                                argv_prefix=h.exec_prefix,
                            )
                        )
                else:
                    for addr in HOSTS:
                        two.append(serve("pg-2hosts", pg_for(apps["pgh"]), addr, 1))
                ready += [s1, p1, p2, *two]
                configs += [
                    Config("sqlite-1w" + suffix, [s1[0]], [s1[1:]], sqlite_keys, None),
                    Config("pg-1w" + suffix, [p1[0]], [p1[1:]], many, apps["pg1"], pg_schema),
                    Config("pg-2w-hot" + suffix, [p2[0]], [p2[1:]], hot, apps["pg2"], pg_schema),
                    Config(
                        "pg-2w-16acct" + suffix, [p2[0]], [p2[1:]], many, apps["pg2"], pg_schema
                    ),
                    Config(
                        ("pg-2hosts-netns" if args.netns else "pg-2hosts") + suffix,
                        [t[0] for t in two],
                        [t[1:] for t in two],
                        many,
                        apps["pgh"],
                        pg_schema,
                        extra,
                    ),
                ]
            for proc, addr, port in ready:
                wait_ready(addr, port, proc)
            answered: dict[str, int] = {}  # PostgreSQL schema URL -> requests answered 200

            def count(cfg: Config, ok: int) -> None:
                if cfg.pg_schema:
                    answered[cfg.pg_schema] = answered.get(cfg.pg_schema, 0) + ok

            for cfg in configs:  # warm-up: connections, caches, pools
                count(cfg, len(load(cfg, 8, max(64, total // 10)).latencies))
            for r in range(args.rounds):
                order = configs[r % len(configs) :] + configs[: r % len(configs)]
                for cfg in order:
                    cfg.rounds.append(measure(cfg, args.pg, 32, total, cfg.extra_pids))
                    count(cfg, int(cfg.rounds[-1]["ok"]))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
            for (suffix, _), schema in zip(variants, schemas, strict=True):
                url = with_params(args.pg, options=f"-csearch_path%3D{schema}")
                line = check_ledger(url, answered.get(url, 0))
                label = f" ({args.baseline})" if suffix else ""
                ledger_lines.append((line + label, line.startswith("ledger exact")))
            for p in reversed(procs):  # before the namespaces go
                p.stop()
    finally:
        for p in reversed(procs):
            p.stop()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            for schema in schemas:
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
        + (f"; …@{args.baseline}: the src/ of {args.baseline}" if args.baseline else "")
    )
    width = max(16, *(len(c.name) for c in configs))
    print(
        f"{'configuration':{width}} {'req/s min/med/max':>24} {'vs sqlite':>9} "
        f"{'gw CPU ms/req':>18} {'PG CPU ms/req':>18} {'errors':>6}"
    )
    out: list[dict[str, Any]] = []
    for cfg in configs:
        rps = [x["rps"] for x in cfg.rounds]
        print(
            f"{cfg.name:{width}} {spread(rps):>24} {statistics.median(rps) / base:9.2f} "
            f"{spread([x['gw_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{spread([x['pg_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{int(sum(x['errors'] for x in cfg.rounds)):6d}"
        )
        out.append({"configuration": cfg.name, "rounds": cfg.rounds})
    for cfg in configs:
        if cfg.extra_pids:
            fwd_ms = spread([x["extra_ms"] for x in cfg.rounds])
            print(
                f"forwarder during {cfg.name} (PostgreSQL/Redis/upstream traffic of the "
                f"namespaced hosts): {fwd_ms} CPU ms/req, not counted above"
            )
    for line, _ in ledger_lines:
        print(line)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"multihost-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"results: {target}")
    return 0 if ledger_lines and all(ok for _, ok in ledger_lines) else 1


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


if __name__ == "__main__":
    sys.exit(main())
