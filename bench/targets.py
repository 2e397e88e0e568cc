"""Issue #14's performance targets, measured interleaved in one run, each printed with
min/median/max over the rounds, the target, and met / not met (judged on the median).

    .venv/bin/python bench/targets.py [--rounds 5] [--quick] [--soak-s 120] [--no-litellm]
                                      [--pg URL] [--redis URL] [--litellm-venv DIR]
                                      [--pg-async-commit] [--pg-commit-delay US]

Servers, all started at once behind one fake upstream (``dexto dev fake-upstream``), loopback:
  direct           the client talks to the fake upstream itself
  sqlite-1w        the gateway on SQLite, 1 worker, 16 accounts
  pg-2w-16acct     the gateway on PostgreSQL, 2 workers, load spread over 16 accounts
  pg-2w-hot        the same server, every request on one account
  pg-2w-async      (--pg-async-commit) a second PostgreSQL gateway, 2 workers, on the same
                   schema and 16 accounts, whose sessions run with synchronous_commit=off
                   (URL options): what the WAL flush waits cost; informational, no target
  pg-2w-delay      (--pg-commit-delay US) the same with commit_delay=US and commit_siblings=1
                   (URL options; needs a superuser role): PostgreSQL's own group commit, a
                   flush's leader waiting US µs for other commits to join; informational
  litellm          LiteLLM's proxy, 1 worker (installed by bench/gateway.py's set-up into
                   --litellm-venv; PyPI only, offline model cost map)
Gateways use the Redis rate limiter (limits far above the load) when Redis answers.

Each round runs, in a rotating order: non-streaming concurrency 32 on every server (req/s; the
gateways' CPU per request from /proc, PostgreSQL server CPU per request from the backends named
by application_name — bench/multihost.py's accounting), and concurrency 1 on direct and
sqlite-1w back to back (p99; the added p99 is the round's gateway p99 minus its direct p99).
Ratios are per round (both sides measured in the same round). Every server is driven by the
same load client (bench/_gateway_load.py on uvloop). A measurement is 6,000 requests at
concurrency 32 (300 for LiteLLM) and 3,000 at concurrency 1 (``--quick``: 300 and 200): with
1,500 and 500, a c=32 measurement lasted under a second on a fast machine and the c=1 p99 was
the fifth-slowest of 500 requests, so one stray pause moved a round's figure by milliseconds.
Then the soak: --soak-s seconds of load (half streaming) on sqlite-1w and pg-2w-16acct at
once, their RSS (process tree) sampled every 5 s: start/end/max and the least-squares slope.
Finally the PostgreSQL ledger is checked (every 200 charged once, no hold left, balances
equal their ledger sums). Requests are bounded by count in the rounds and by --soak-s in the soak.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import _read_response, build_request, chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, start_fake_upstream  # noqa: E402
from gateway import start_litellm  # noqa: E402
from multihost import (  # noqa: E402
    PG_DEFAULT,
    REDIS_DEFAULT,
    Config,
    check_ledger,
    make_accounts,
    measure,
    serve_gateway,
    spread,
    wait_ready,
    with_params,
)

PY = sys.executable
ADDR = "127.0.0.1"
ACCOUNTS = 16
SAMPLE_S = 5.0


@dataclass
class Target:
    label: str
    values: list[float]
    op: str  # ">=" or "<="
    bound: float
    unit: str = ""

    def line(self) -> str:
        if not self.values:
            return f"{self.label:46} {'-':>22} {self.op} {self.bound:g}{self.unit:4} not measured"
        med = statistics.median(self.values)
        met = med >= self.bound if self.op == ">=" else med <= self.bound
        shown = f"{min(self.values):.2f}/{med:.2f}/{max(self.values):.2f}"
        target = f"{'≥' if self.op == '>=' else '≤'} {self.bound:g}{self.unit}"
        return f"{self.label:46} {shown:>22} {target:>10} {'met' if met else 'NOT MET'}"


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return float("nan")
    ts = [t for t, _ in samples]
    ms = [m for _, m in samples]
    t_mean, m_mean = statistics.fmean(ts), statistics.fmean(ms)
    den = sum((t - t_mean) ** 2 for t in ts)
    num = sum((t - t_mean) * (m - m_mean) for t, m in zip(ts, ms, strict=True))
    return num / den * 60 if den else float("nan")


async def _soak_worker(port: int, request: bytes, until: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(ADDR, port)
    try:
        while time.monotonic() < until:
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                counts["errors"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(ADDR, port)
                continue
            counts["ok" if status == 200 else "errors"] += 1
    finally:
        writer.close()


def soak(
    servers: list[tuple[str, Proc, int, list[str]]], seconds: float, concurrency: int
) -> dict[str, dict[str, Any]]:
    """Load on every server for ``seconds`` (half the connections streaming), each server's RSS
    sampled every SAMPLE_S: {name: {"samples": [(t, MB)], "ok": n, "errors": n}}."""
    out: dict[str, dict[str, Any]] = {
        name: {"samples": [], "ok": 0, "errors": 0} for name, *_ in servers
    }

    async def main() -> None:
        t0 = time.monotonic()
        until = t0 + seconds
        tasks = []
        for name, _, port, keys in servers:
            for i in range(concurrency):
                body = chat_body(stream=i % 2 == 1)
                auth = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
                req = build_request(ADDR, port, "/v1/chat/completions", body, auth)
                tasks.append(asyncio.create_task(_soak_worker(port, req, until, out[name])))
        while True:
            now = time.monotonic()
            for name, proc, *_ in servers:
                out[name]["samples"].append((now - t0, proc.rss_mb()))
            if now >= until:
                break
            await asyncio.sleep(min(SAMPLE_S, max(0.0, until - now)))
        await asyncio.gather(*tasks)

    asyncio.run(main())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--soak-s", type=float, default=120.0, help="RSS soak length, seconds")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--litellm-venv", default="/tmp/dexto-bench-litellm")
    ap.add_argument("--pg", default=PG_DEFAULT)
    ap.add_argument("--redis", default=REDIS_DEFAULT)
    ap.add_argument(
        "--pg-async-commit",
        action="store_true",
        help="also measure pg-2w-async: PostgreSQL sessions with synchronous_commit=off",
    )
    ap.add_argument(
        "--pg-commit-delay",
        type=int,
        metavar="US",
        help="also measure pg-2w-delay: sessions with commit_delay=US, commit_siblings=1",
    )
    args = ap.parse_args()
    n32, n1, ln32 = (300, 200, 100) if args.quick else (6000, 3000, 300)
    import psycopg
    import redis

    work = Path(tempfile.mkdtemp(prefix="dexto-bench-targets-"))
    tag = uuid.uuid4().hex[:10]
    schema, prefix = f"dexto_bench_{tag}", f"dexto-bench:{tag}:"
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
    app = f"bench-targets-{tag}"
    procs: list[Proc] = []
    rows: dict[str, list[dict[str, float]]] = {}
    c1: list[dict[str, float]] = []
    soaked: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    ledger_line = "ledger not checked"
    try:
        fake, up_port = start_fake_upstream(PY, env, work)
        procs.append(fake)
        upstream = f"http://127.0.0.1:{up_port}/api/v1"
        sqlite_keys = make_accounts(f"sqlite:///{work / 'gateway.db'}", ACCOUNTS, "s", env)
        pg_keys = make_accounts(pg_schema, ACCOUNTS + 1, "p", env)
        common: dict[str, Any] = {
            "env": env,
            "work": work,
            "upstream": upstream,
            "redis_url": redis_url,
            "redis_prefix": prefix,
        }
        s1, s1p = serve_gateway("sqlite-1w", f"sqlite:///{work / 'gateway.db'}", ADDR, 1, **common)
        procs.append(s1)
        p2, p2p = serve_gateway(
            "pg-2w", with_params(pg_schema, application_name=app), ADDR, 2, **common
        )
        procs.append(p2)
        # informational variants: (name, suffix of application_name, extra session options)
        variants: list[tuple[str, str, str]] = []
        if args.pg_async_commit:
            variants.append(("pg-2w-async", "async", "-csynchronous_commit%3Doff"))
        if args.pg_commit_delay is not None:
            delay = f"-ccommit_delay%3D{args.pg_commit_delay}%20-ccommit_siblings%3D1"
            variants.append(("pg-2w-delay", "delay", delay))
        started: list[tuple[str, str, tuple[Proc, int]]] = []
        for name, suffix, options in variants:
            url = with_params(
                args.pg,
                options=f"-csearch_path%3D{schema}%20{options}",
                application_name=f"{app}-{suffix}",
            )
            started.append((name, suffix, serve_gateway(name, url, ADDR, 2, **common)))
            procs.append(started[-1][2][0])
        wait_ready(ADDR, s1p, s1)
        wait_ready(ADDR, p2p, p2)
        for _, _, (proc, port) in started:
            wait_ready(ADDR, port, proc)
        lite: tuple[Proc, int] | None = None
        if not args.no_litellm:
            try:
                lite = start_litellm(Path(args.litellm_venv), env, work, up_port)
                procs.append(lite[0])
            except Exception as exc:  # noqa: BLE001 - report why and carry on without it
                notes.append(f"LiteLLM not measured: {type(exc).__name__}: {exc}")

        sqlite_cfg = Config("sqlite-1w", [s1], [(ADDR, s1p)], sqlite_keys, None)
        pg16 = Config("pg-2w-16acct", [p2], [(ADDR, p2p)], pg_keys[1:], app)
        pghot = Config("pg-2w-hot", [p2], [(ADDR, p2p)], pg_keys[:1], app)
        pg_configs = [pg16, pghot]
        for name, suffix, (proc, port) in started:
            pg_configs.append(Config(name, [proc], [(ADDR, port)], pg_keys[1:], f"{app}-{suffix}"))
        body = chat_body()
        direct_auth = {"Authorization": "Bearer sk-or-direct"}
        direct_path = "/api/v1/chat/completions"
        s1_auth = {"Authorization": f"Bearer {sqlite_keys[0]}"}
        answered = [0]

        def gw(cfg: Config) -> Callable[[], dict[str, float]]:
            def run() -> dict[str, float]:
                r = measure(cfg, args.pg, 32, n32)
                answered[0] += int(r["ok"]) if cfg.app_name else 0
                return r

            return run

        def direct() -> dict[str, float]:
            r = run_load(ADDR, up_port, direct_path, body, direct_auth, concurrency=32, total=n32)
            return {"rps": r.rps, "errors": float(r.errors)}

        def litellm() -> dict[str, float]:
            assert lite is not None
            auth = {"Authorization": "Bearer sk-bench-master"}
            cpu0 = lite[0].cpu_seconds()
            r = run_load(
                ADDR, lite[1], "/v1/chat/completions", body, auth, concurrency=32, total=ln32
            )
            cpu_ms = (lite[0].cpu_seconds() - cpu0) * 1000 / (len(r.latencies) or 1)
            return {"rps": r.rps, "gw_cpu_ms": cpu_ms, "errors": float(r.errors)}

        def c1_pair(r: int) -> None:
            def one(port: int, path: str, auth: dict[str, str]) -> float:
                res = run_load(ADDR, port, path, body, auth, concurrency=1, total=n1)
                return res.pct(0.99) * 1000

            order = [("direct", up_port, direct_path, direct_auth)]
            order.append(("sqlite-1w", s1p, "/v1/chat/completions", s1_auth))
            if r % 2:
                order.reverse()
            c1.append({name: one(port, path, auth) for name, port, path, auth in order})

        units: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("direct", direct),
            ("sqlite-1w", gw(sqlite_cfg)),
            ("pg-2w-16acct", gw(pg16)),
            ("pg-2w-hot", gw(pghot)),
        ]
        units += [(cfg.name, gw(cfg)) for cfg in pg_configs[2:]]
        if lite is not None:
            units.append(("litellm", litellm))
        # warm-up: connections, pools, caches (also LiteLLM's first-request start-up)
        run_load(ADDR, up_port, direct_path, body, direct_auth, concurrency=8, total=200)
        for cfg in (sqlite_cfg, *pg_configs):
            r0 = measure(cfg, args.pg, 8, max(64, n32 // 10))
            answered[0] += int(r0["ok"]) if cfg.app_name else 0
        if lite is not None:
            lite_auth = {"Authorization": "Bearer sk-bench-master"}
            run_load(
                ADDR, lite[1], "/v1/chat/completions", body, lite_auth, concurrency=4, total=40
            )
        for r in range(args.rounds):
            k = r % (len(units) + 1)
            steps: list[Callable[[], None]] = [
                (lambda name=name, fn=fn: rows.setdefault(name, []).append(fn()))
                for name, fn in units
            ]
            steps.append(lambda r=r: c1_pair(r))
            for step in steps[k:] + steps[:k]:
                step()
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        if args.soak_s > 0:
            print(f"soak: {args.soak_s:.0f} s", file=sys.stderr)
            soaked = soak(
                [
                    ("sqlite-1w", s1, s1p, sqlite_keys),
                    ("pg-2w-16acct", p2, p2p, pg_keys[1:]),
                ],
                args.soak_s,
                16,
            )
            answered[0] += soaked["pg-2w-16acct"]["ok"]
        ledger_line = check_ledger(pg_schema, answered[0])
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

    return report(args, rows, c1, soaked, notes, ledger_line, redis_url is not None)


def report(
    args: argparse.Namespace,
    rows: dict[str, list[dict[str, float]]],
    c1: list[dict[str, float]],
    soaked: dict[str, dict[str, Any]],
    notes: list[str],
    ledger_line: str,
    with_redis: bool,
) -> int:
    def col(name: str, key: str) -> list[float]:
        return [x[key] for x in rows.get(name, []) if key in x and x[key] == x[key]]

    def ratio(a: str, b: str) -> list[float]:
        pairs = zip(rows.get(a, []), rows.get(b, []), strict=False)
        return [x["rps"] / y["rps"] for x, y in pairs if y["rps"]]

    print(
        f"\nnon-stream, {args.rounds} rounds interleaved in rotating order, limiter: "
        f"{'Redis' if with_redis else 'in-process'}; min/median/max over rounds"
    )
    print(f"{'server':14} {'c32 req/s':>24} {'CPU ms/req':>18} {'PG CPU ms/req':>18} {'errors':>6}")
    for name, rs in rows.items():
        print(
            f"{name:14} {spread(col(name, 'rps')):>24} {spread(col(name, 'gw_cpu_ms')):>18} "
            f"{spread(col(name, 'pg_cpu_ms')):>18} {int(sum(x['errors'] for x in rs)):6d}"
        )
    if c1:
        print(
            f"{'c=1 p99 ms':14} direct {spread([x['direct'] for x in c1])}, "
            f"sqlite-1w {spread([x['sqlite-1w'] for x in c1])}"
        )
    targets = [
        Target(
            "PG 2w 16 accounts / SQLite 1w, req/s", ratio("pg-2w-16acct", "sqlite-1w"), ">=", 0.8
        ),
        Target(
            "PG 2w one hot account / SQLite 1w, req/s", ratio("pg-2w-hot", "sqlite-1w"), ">=", 0.6
        ),
        Target("SQLite 1w / direct, non-stream req/s", ratio("sqlite-1w", "direct"), ">=", 0.3),
        Target(
            "c=1 added p99 (SQLite 1w - direct)",
            [x["sqlite-1w"] - x["direct"] for x in c1],
            "<=",
            1.5,
            " ms",
        ),  # fmt: skip
        Target(
            "gateway CPU/request, PG 2w 16 accounts",
            col("pg-2w-16acct", "gw_cpu_ms"),
            "<=",
            0.6,
            " ms",
        ),  # fmt: skip
        Target(
            "PG server CPU/request, PG 2w 16 accounts",
            col("pg-2w-16acct", "pg_cpu_ms"),
            "<=",
            0.5,
            " ms",
        ),  # fmt: skip
        Target("SQLite 1w / LiteLLM, req/s", ratio("sqlite-1w", "litellm"), ">=", 20),
    ]
    print(f"\n{'target (issue #14)':46} {'min/median/max':>22} {'target':>10} verdict")
    for t in targets:
        print(t.line())
    for name, label in (("pg-2w-async", "async commit"), ("pg-2w-delay", "commit_delay")):
        if rows.get(name):
            shown = spread(ratio(name, "sqlite-1w"))
            print(f"{f'PG 2w {label} / SQLite 1w, req/s':46} {shown:>22} (informational)")
    for name, s in soaked.items():
        samples = s["samples"]
        mbs = [m for _, m in samples]
        slope = slope_mb_per_min(samples)
        verdict = "met" if slope <= 1.0 else "NOT MET"
        print(
            f"{'RSS soak ' + name + f' {args.soak_s:.0f} s':46} "
            f"{f'{mbs[0]:.1f}/{mbs[-1]:.1f}/{max(mbs):.1f} MB':>22} {'≤ 1 MB/min':>10} "
            f"{verdict} (start/end/max; slope {slope:+.2f} MB/min, {len(samples)} samples, "
            f"{s['ok']} requests, {s['errors']} errors)"
        )
    print(ledger_line)
    for note in notes:
        print(note)
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"targets-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"rounds": rows, "c1_p99_ms": c1, "soak": soaked}, indent=2))
    print(f"results: {out}")
    return 0 if ledger_line.startswith("ledger exact") else 1


if __name__ == "__main__":
    sys.exit(main())
