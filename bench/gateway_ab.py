"""A/B benchmark: the gateway built from several git refs (and settings), measured interleaved.

    .venv/bin/python bench/gateway_ab.py [--rounds 5] [--requests 3000] [--stream] \
        [--concurrency 32] [--variant NAME=REF[,ENV=VALUE...]]...

Each variant is the ``src/`` tree of a git ref (``git archive`` into a temporary directory; the
working tree for ``WORKTREE``) run by this venv's Python, with extra ``DEXTO_GATEWAY_*``
settings. Default variants: ``main`` and this working tree, each at log level WARNING and INFO.
Every variant gets its own SQLite gateway (1 worker) behind one shared fake upstream; rounds run
the variants one after another in a rotating order (non-streaming unless ``--stream``; concurrency
32 unless ``--concurrency``). Prints req/s, gateway CPU ms per request (utime+stime from /proc)
and the median latency, min/median/max over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_VARIANTS = [
    "main-warning=main,LOG_LEVEL=WARNING",
    "this-warning=WORKTREE,LOG_LEVEL=WARNING",
    "main-info=main,LOG_LEVEL=INFO",
    "this-info=WORKTREE,LOG_LEVEL=INFO",
]


# Settings every benchmarked gateway gets: a fake upstream key, limits far above the load.
BENCH_GW_ENV = {
    "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-bench-upstream",
    "DEXTO_GATEWAY_RATE_LIMIT_RPS": "1000000",
    "DEXTO_GATEWAY_RATE_LIMIT_BURST": "1000000",
}


def prepare_variant(
    name: str, ref: str, work: Path, env: dict[str, str], db: str | None = None
) -> tuple[dict[str, str], str, str]:
    """For the ``src/`` tree of ``ref``: its environment (PYTHONPATH), a database URL (``db``, or
    a new SQLite file) with one funded account made by that tree's code, and the account's API
    key."""
    venv = {**env, "PYTHONPATH": str(source_tree(ref, work))}
    db = db or f"sqlite:///{work / (name + '.db')}"
    created = subprocess.run(
        [PY, "-m", "dexto.cli.main", "gateway", "accounts", "create", "--db", db]
        + ["--email", f"{name}@bench.example", "--credits", "100000000", "--json"],
        env=venv,
        check=True,
        capture_output=True,
        text=True,
    )
    return venv, db, json.loads(created.stdout)["apiKey"]


def serve_argv(db: str, port: int, up_port: int) -> list[str]:
    """``dexto gateway serve`` on ``db`` and ``port`` in front of the fake upstream."""
    argv = [PY, "-m", "dexto.cli.main", "gateway", "serve", "--db", db, "--port", str(port)]
    return argv + ["--upstream", f"http://127.0.0.1:{up_port}/api/v1"]


def source_tree(ref: str, work: Path) -> Path:
    if ref == "WORKTREE":
        return ROOT / "src"
    out = work / f"src-{ref.replace('/', '_')}"
    if not out.exists():
        out.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000, help="per variant per round")
    ap.add_argument("--variant", action="append", help="NAME=REF[,SETTING=VALUE...]")
    ap.add_argument("--stream", action="store_true", help="streaming requests (SSE)")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dexto-bench-ab-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    procs: list[Proc] = []
    variants: list[tuple[str, Proc, int, str]] = []
    rounds: dict[str, list[tuple[float, float, float]]] = {}
    body = chat_body(stream=args.stream)
    try:
        fake, up_port = start_fake_upstream(PY, {**env, "PYTHONPATH": str(ROOT / "src")}, work)
        procs.append(fake)
        for spec in args.variant or DEFAULT_VARIANTS:
            name, _, rest = spec.partition("=")
            ref, *settings = rest.split(",")
            venv, db, key = prepare_variant(name, ref, work, env)
            port = free_port()
            gw_env = {**venv, **BENCH_GW_ENV}
            for item in settings:
                k, _, v = item.partition("=")
                gw_env[f"DEXTO_GATEWAY_{k.upper()}"] = v
            proc = Proc(serve_argv(db, port, up_port), gw_env, work / f"{name}.log")
            procs.append(proc)
            wait_http(port, "/healthz", 60, proc.popen)
            variants.append((name, proc, port, key))
            rounds[name] = []
        for _name, _proc, port, key in variants:  # warm-up
            auth = {"Authorization": f"Bearer {key}"}
            run_load(
                "127.0.0.1", port, "/v1/chat/completions", body, auth, concurrency=8, total=300
            )
        for r in range(args.rounds):
            for name, proc, port, key in (
                variants[r % len(variants) :] + variants[: r % len(variants)]
            ):
                cpu0 = proc.cpu_seconds()
                res = run_load(
                    "127.0.0.1",
                    port,
                    "/v1/chat/completions",
                    body,
                    {"Authorization": f"Bearer {key}"},
                    concurrency=args.concurrency,
                    total=args.requests,
                )
                cpu = (proc.cpu_seconds() - cpu0) * 1000 / max(1, len(res.latencies))
                rounds[name].append((res.rps, cpu, res.pct(0.5) * 1000))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.stop()

    def spread(xs: list[float], fmt: str) -> str:
        return "/".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))

    kind = "stream" if args.stream else "non-stream"
    print(
        f"{kind}, c={args.concurrency}, {args.requests} requests per variant per round, "
        f"{args.rounds} rounds (interleaved, rotating order); min/median/max"
    )
    print(f"{'variant':16} {'req/s':>20} {'CPU ms/req':>18} {'p50 ms':>18}")
    for name, *_ in variants:
        rps = [x for x, _, _ in rounds[name]]
        cpus = [c for _, c, _ in rounds[name]]
        p50 = [m for _, _, m in rounds[name]]
        print(
            f"{name:16} {spread(rps, '.0f'):>20} {spread(cpus, '.3f'):>18} {spread(p50, '.2f'):>18}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
