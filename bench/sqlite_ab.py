"""SQLite latency A/B: the gateway built from several git refs, measured interleaved at c=1/32/128.

    .venv/bin/python bench/sqlite_ab.py [--rounds 3] [--variant NAME=REF]... [--stream]

Like ``bench/gateway_ab.py`` (each variant is the ``src/`` tree of a git ref, ``WORKTREE`` for
this working tree, run by this venv's Python on its own SQLite file in a temporary directory on
the same filesystem as ``/tmp``), but each round measures, per variant in rotating order:
p50/p99 latency at concurrency 1, and req/s, p50/p99 latency and gateway CPU ms per request
(utime+stime from /proc) at concurrency 32 and 128. Prints min/median/max over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402
from gateway_ab import BENCH_GW_ENV, prepare_variant, serve_argv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_VARIANTS = ["main=main", "this=WORKTREE"]
PATH = "/v1/chat/completions"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--c1", type=int, default=600, help="requests at concurrency 1")
    ap.add_argument("--c32", type=int, default=3000, help="requests at concurrency 32")
    ap.add_argument("--c128", type=int, default=3000, help="requests at concurrency 128")
    ap.add_argument("--variant", action="append", help="NAME=REF")
    ap.add_argument("--stream", action="store_true", help="20-chunk streams instead")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dexto-bench-sqlite-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    procs: list[Proc] = []
    variants: list[tuple[str, Proc, int, str]] = []
    rows: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, int] = {}
    body = chat_body(args.stream)
    try:
        fake, up_port = start_fake_upstream(PY, {**env, "PYTHONPATH": str(ROOT / "src")}, work)
        procs.append(fake)
        for spec in args.variant or DEFAULT_VARIANTS:
            name, _, ref = spec.partition("=")
            venv, db, key = prepare_variant(name, ref, work, env)
            port = free_port()
            gw_env = {**venv, **BENCH_GW_ENV, "DEXTO_GATEWAY_LOG_LEVEL": "WARNING"}
            proc = Proc(serve_argv(db, port, up_port), gw_env, work / f"{name}.log")
            procs.append(proc)
            wait_http(port, "/healthz", 60, proc.popen)
            variants.append((name, proc, port, key))
            rows[name] = {}
        for _name, _proc, port, key in variants:  # warm-up
            auth = {"Authorization": f"Bearer {key}"}
            run_load("127.0.0.1", port, PATH, body, auth, concurrency=8, total=300)
        for r in range(args.rounds):
            for name, proc, port, key in (
                variants[r % len(variants) :] + variants[: r % len(variants)]
            ):
                auth = {"Authorization": f"Bearer {key}"}
                row = rows[name]
                for c, n in ((1, args.c1), (32, args.c32), (128, args.c128)):
                    cpu0 = proc.cpu_seconds()
                    res = run_load("127.0.0.1", port, PATH, body, auth, concurrency=c, total=n)
                    cpu = (proc.cpu_seconds() - cpu0) * 1000 / max(1, len(res.latencies))
                    if res.errors:  # reported, not fatal: a loaded machine may time out
                        print(f"{name} c={c}: {res.errors} errors {res.statuses}", file=sys.stderr)
                    errors[name] = errors.get(name, 0) + res.errors
                    row.setdefault(f"c{c} p50 ms", []).append(res.pct(0.5) * 1000)
                    row.setdefault(f"c{c} p99 ms", []).append(res.pct(0.99) * 1000)
                    if c > 1:
                        row.setdefault(f"c{c} req/s", []).append(res.rps)
                    row.setdefault(f"c{c} CPU ms/req", []).append(cpu)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.stop()

    def spread(xs: list[float]) -> str:
        fmt = ".0f" if min(xs) >= 100 else ".3f" if min(xs) < 1 else ".2f"
        return "/".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))

    kind = "20-chunk streams" if args.stream else "non-stream"
    print(f"{kind}, {args.rounds} rounds (interleaved, rotating order); min/median/max")
    metrics = list(next(iter(rows.values())))
    print(f"{'metric':16}" + "".join(f"{name:>26}" for name, *_ in variants))
    for m in metrics:
        print(f"{m:16}" + "".join(f"{spread(rows[name][m]):>26}" for name, *_ in variants))
    print(f"{'errors':16}" + "".join(f"{errors.get(name, 0):>26}" for name, *_ in variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
