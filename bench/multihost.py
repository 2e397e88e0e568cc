"""Scale-out benchmark: SQLite vs PostgreSQL, one worker vs two, one hot account vs 16, one
host vs two hosts (separate processes on 127.0.0.2 and 127.0.0.3 sharing one PostgreSQL schema
and one Redis key prefix), all started at once and measured in interleaved rounds.

    .venv/bin/python bench/multihost.py [--quick] [--rounds N] [--pg URL] [--redis URL]
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
shared. Loopback only; every loop is bounded by a request count. Needs PostgreSQL and Redis.
With ``--baseline REF`` every configuration also runs from the ``src/`` tree of that git ref
(its own gateway processes, named ``…@REF``), interleaved in the same rounds.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import LoadResult, _worker, build_request, chat_body  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream  # noqa: E402

PY = sys.executable
HOSTS = ("127.0.0.2", "127.0.0.3")
ACCOUNTS = 16
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
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


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


def measure(cfg: Config, pg_base: str, concurrency: int, total: int) -> dict[str, float]:
    pg0 = pg_backend_cpu(pg_base, cfg.app_name) if cfg.app_name else {}
    cpu0 = sum(p.cpu_seconds() for p in cfg.procs)
    res = load(cfg, concurrency, total)
    cpu1 = sum(p.cpu_seconds() for p in cfg.procs)
    pg1 = pg_backend_cpu(pg_base, cfg.app_name) if cfg.app_name else {}
    done = len(res.latencies) or 1
    pg_cpu = sum(pg1[p] - pg0[p] for p in pg1 if p in pg0)
    return {
        "rps": res.rps,
        "gw_cpu_ms": (cpu1 - cpu0) * 1000 / done,
        "pg_cpu_ms": pg_cpu * 1000 / done if cfg.app_name else float("nan"),
        "errors": float(res.errors),
    }


def spread(xs: list[float]) -> str:
    if not xs or all(x != x for x in xs):
        return "-"
    return f"{min(xs):.2f}/{statistics.median(xs):.2f}/{max(xs):.2f}"


def source_tree(ref: str, work: Path) -> Path:
    """The ``src/`` directory of git ref ``ref``, extracted under ``work``."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    out = work / f"src-{ref.replace('/', '_')}"
    out.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=0, help="per configuration per round")
    ap.add_argument(
        "--pg",
        default=os.environ.get("DEXTO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument(
        "--redis", default=os.environ.get("DEXTO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--baseline", help="also run every configuration from this git ref")
    args = ap.parse_args()
    total = args.requests or (300 if args.quick else 1500)
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
    try:
        fake, up_port = start_fake_upstream(PY, env, work)
        procs.append(fake)
        sqlite_url = f"sqlite:///{work / 'gateway.db'}"
        sqlite_keys = make_accounts(sqlite_url, ACCOUNTS, "s")
        pg_keys = make_accounts(pg_schema, ACCOUNTS + 1, "p")
        hot, many = pg_keys[:1], pg_keys[1:]

        def serve(
            name: str, db: str, addr: str, workers: int, src: Path | None = None
        ) -> tuple[Proc, int]:
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
                gw_env["DEXTO_GATEWAY_REDIS_PREFIX"] = prefix
            argv = [PY, "-m", "dexto.cli.main", "gateway", "serve", "--db", db, "--host", addr]
            argv += ["--port", str(port), "--workers", str(workers)]
            argv += ["--upstream", f"http://127.0.0.1:{up_port}/api/v1"]
            proc = Proc(argv, gw_env, work / f"{name}-{addr}.log")
            procs.append(proc)
            return proc, port

        def pg_for(app: str) -> str:
            return with_params(pg_schema, application_name=app)

        variants: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline:
            variants.append((f"@{args.baseline}", source_tree(args.baseline, work)))
        for suffix, src in variants:
            sfx = suffix.replace("@", "-").replace("/", "_")
            lite = sqlite_url if src is None else f"sqlite:///{work / ('gateway' + sfx + '.db')}"
            lite_keys = sqlite_keys if src is None else make_accounts(lite, ACCOUNTS, "s")
            apps = {k: f"bench-{k}{sfx}-{tag}" for k in ("pg1", "pg2", "pgh")}
            s1, s1p = serve("sqlite-1w" + sfx, lite, HOSTS[0], 1, src)
            p1, p1p = serve("pg-1w" + sfx, pg_for(apps["pg1"]), HOSTS[0], 1, src)
            p2, p2p = serve("pg-2w" + sfx, pg_for(apps["pg2"]), HOSTS[0], 2, src)
            ha, hap = serve("pg-2hosts" + sfx, pg_for(apps["pgh"]), HOSTS[0], 1, src)
            hb, hbp = serve("pg-2hosts" + sfx, pg_for(apps["pgh"]), HOSTS[1], 1, src)
            for proc, addr, port in [
                (s1, HOSTS[0], s1p),
                (p1, HOSTS[0], p1p),
                (p2, HOSTS[0], p2p),
                (ha, HOSTS[0], hap),
                (hb, HOSTS[1], hbp),
            ]:
                wait_ready(addr, port, proc)
            configs += [
                Config("sqlite-1w" + suffix, [s1], [(HOSTS[0], s1p)], lite_keys, None),
                Config("pg-1w" + suffix, [p1], [(HOSTS[0], p1p)], many, apps["pg1"]),
                Config("pg-2w-hot" + suffix, [p2], [(HOSTS[0], p2p)], hot, apps["pg2"]),
                Config("pg-2w-16acct" + suffix, [p2], [(HOSTS[0], p2p)], many, apps["pg2"]),
                Config(
                    "pg-2hosts" + suffix,
                    [ha, hb],
                    [(HOSTS[0], hap), (HOSTS[1], hbp)],
                    many,
                    apps["pgh"],
                ),
            ]
        for cfg in configs:  # warm-up: connections, caches, pools
            load(cfg, 8, max(64, total // 10))
        for r in range(args.rounds):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for cfg in order:
                cfg.rounds.append(measure(cfg, args.pg, 32, total))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
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
    print(
        f"non-stream, c=32, {total} requests per configuration per round, {args.rounds} rounds "
        f"(interleaved, rotating order); limiter: {'Redis' if redis_url else 'in-process'}"
    )
    print(
        f"{'configuration':22} {'req/s min/med/max':>24} {'vs sqlite':>9} "
        f"{'gw CPU ms/req':>18} {'PG CPU ms/req':>18} {'errors':>6}"
    )
    out: list[dict[str, Any]] = []
    for cfg in configs:
        rps = [x["rps"] for x in cfg.rounds]
        print(
            f"{cfg.name:22} {spread(rps):>24} {statistics.median(rps) / base:9.2f} "
            f"{spread([x['gw_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{spread([x['pg_cpu_ms'] for x in cfg.rounds]):>18} "
            f"{int(sum(x['errors'] for x in cfg.rounds)):6d}"
        )
        out.append({"configuration": cfg.name, "rounds": cfg.rounds})
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"multihost-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
