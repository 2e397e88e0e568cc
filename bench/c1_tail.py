"""Concurrency-1 latency tail: the direct path and gateways built from git refs, interleaved.

    .venv/bin/python bench/c1_tail.py [--rounds 5] [--requests 5000] [--no-redis] [--concurrency 1]
                                      [--variant NAME=REF[,SETTING=VALUE|ENV:NAME=VALUE...]]...

One fake upstream; ``direct`` (the client talks to the fake upstream itself) and every variant
(the ``src/`` tree of a git ref, ``WORKTREE`` for this one, see :mod:`gateway_ab`) as a SQLite
gateway with 1 worker at log level WARNING, the Redis rate limiter when Redis answers (limits far
above the load), as bench/targets.py runs it. ``SETTING=VALUE`` sets ``DEXTO_GATEWAY_SETTING``;
``ENV:NAME=VALUE`` sets an environment variable of the gateway process. Default variants:
``main`` and ``this`` (the working tree).

Each round runs every server in a rotating order, ``--requests`` sequential non-streaming requests
on one keep-alive connection (``--concurrency`` connections sharing the count). Prints
p50/p99/p99.9 and req/s per server (min/median/max over rounds)
and each gateway's added p99 (its p99 minus the same round's direct p99). The latencies (with the
time each request started) are written to a JSON file for a closer look.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import _read_response as read_response  # noqa: E402
from _gateway_load import build_request, chat_body, run_loop  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402
from gateway_ab import BENCH_GW_ENV, prepare_variant, serve_argv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
QS = (0.5, 0.99, 0.999)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def sequential(
    port: int, path: str, body: bytes, auth: str, n: int, concurrency: int = 1
) -> list[tuple[float, float]]:
    """``n`` requests, one after another on each of ``concurrency`` connections: [(start,
    seconds)] of the 200s."""
    request = build_request("127.0.0.1", port, path, body, {"Authorization": f"Bearer {auth}"})
    left = [n]

    async def one(out: list[tuple[float, float]]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                t0 = time.perf_counter()
                writer.write(request)
                status = await read_response(reader)
                if status == 200:
                    out.append((t0, time.perf_counter() - t0))
        finally:
            writer.close()

    async def main() -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        await asyncio.gather(*(one(out) for _ in range(concurrency)))
        return out

    return run_loop(main())


def spread(xs: list[float], fmt: str = ".2f") -> str:
    if not xs:
        return "-"
    return "/".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=5000, help="per server per round")
    ap.add_argument("--variant", action="append", help="NAME=REF[,SETTING=VALUE...]")
    ap.add_argument("--concurrency", type=int, default=1, help="connections per server")
    ap.add_argument("--no-redis", action="store_true", help="in-process rate limiters")
    ap.add_argument("--redis", default=REDIS_DEFAULT)
    ap.add_argument("--out", default="", help="JSON file for the latencies")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dexto-bench-c1-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    prefix = f"dexto-bench:{uuid.uuid4().hex[:10]}:"
    redis_url = None if args.no_redis else args.redis
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_timeout=2).ping()
        except redis.RedisError as exc:
            print(f"Redis not reachable ({type(exc).__name__}): in-process rate limiters")
            redis_url = None
    body = chat_body()
    procs: list[Proc] = []
    # name -> (port, path, key)
    servers: list[tuple[str, int, str, str]] = []
    lat: dict[str, list[list[tuple[float, float]]]] = {}
    rps: dict[str, list[float]] = {}
    try:
        fake, up_port = start_fake_upstream(PY, {**env, "PYTHONPATH": str(ROOT / "src")}, work)
        procs.append(fake)
        servers.append(("direct", up_port, "/api/v1/chat/completions", "sk-or-direct"))
        for spec in args.variant or ["main=main", "this=WORKTREE"]:
            name, _, rest = spec.partition("=")
            ref, *settings = rest.split(",")
            venv, db, key = prepare_variant(name, ref, work, env)
            gw_env = {**venv, **BENCH_GW_ENV, "DEXTO_GATEWAY_LOG_LEVEL": "WARNING"}
            if redis_url:
                gw_env["DEXTO_GATEWAY_REDIS_URL"] = redis_url
                gw_env["DEXTO_GATEWAY_REDIS_PREFIX"] = prefix + name + ":"
            for item in settings:
                k, _, v = item.partition("=")
                if k.startswith("ENV:"):
                    gw_env[k[4:]] = v
                else:
                    gw_env[f"DEXTO_GATEWAY_{k.upper()}"] = v
            port = free_port()
            proc = Proc(serve_argv(db, port, up_port), gw_env, work / f"{name}.log")
            procs.append(proc)
            wait_http(port, "/healthz", 60, proc.popen)
            servers.append((name, port, "/v1/chat/completions", key))
        for name, port, path, key in servers:  # warm-up
            lat[name] = []
            sequential(port, path, body, key, 500)
        for r in range(args.rounds):
            k = r % len(servers)
            for name, port, path, key in servers[k:] + servers[:k]:
                t0 = time.perf_counter()
                lat[name].append(sequential(port, path, body, key, args.requests, args.concurrency))
                rps.setdefault(name, []).append(len(lat[name][-1]) / (time.perf_counter() - t0))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.stop()
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()

    print(
        f"c={args.concurrency} non-stream, {args.requests} requests per server per round, "
        f"{args.rounds} rounds "
        f"(rotating order), limiter: {'Redis' if redis_url else 'in-process'}; "
        "ms, min/median/max over rounds"
    )
    print(f"{'server':14} {'p50':>18} {'p99':>18} {'p99.9':>20} {'added p99':>20} {'req/s':>16}")
    direct_p99 = [pct([d for _, d in xs], 0.99) for xs in lat["direct"]]
    for name, *_ in servers:
        per_q = [[pct([d for _, d in xs], q) * 1000 for xs in lat[name]] for q in QS]
        added = [
            (pct([d for _, d in xs], 0.99) - dp) * 1000
            for xs, dp in zip(lat[name], direct_p99, strict=True)
        ]
        shown = spread(added) if name != "direct" else "-"
        print(
            f"{name:14} {spread(per_q[0]):>18} {spread(per_q[1]):>18} {spread(per_q[2]):>20} "
            f"{shown:>20} {spread(rps[name], '.0f'):>16}"
        )
    out = Path(args.out) if args.out else work / "c1_tail.json"
    out.write_text(json.dumps(lat))
    print(f"latencies: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
