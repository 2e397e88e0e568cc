"""Upstream-client benchmark: the same gateway with three upstream clients, interleaved.

    .venv/bin/python bench/upstream_client.py [--rounds 5] [--requests 1500] [--baseline /work/main]

Targets (each its own `dexto gateway serve` on its own SQLite file, all → one fake upstream):
``baseline`` — the checkout at ``--baseline`` with its own .venv (the client before this change),
``ours`` — this tree, ``aiohttp`` — this tree with aiohttp's connector patched in
(bench/_aiohttp_upstream.py; needs ``pip install aiohttp``). Each round measures every target
once per mode (non-streaming, 20-chunk streaming) at concurrency 32, in a rotated order, and
prints req/s and server CPU ms per request as min / median / max over the rounds. The machine is
shared: only figures from the same run compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def start_gateway(
    name: str, prefix: list[str], cwd: Path, env: dict[str, str], work: Path, upstream: str
) -> tuple[Proc, int, str]:
    db = f"sqlite:///{work / f'{name}.db'}"
    out = subprocess.run(
        [*prefix, "gateway", "accounts", "create", "--db", db, "--email", f"{name}@example.com"]
        + ["--credits", "1000000", "--json"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    key = json.loads(out.stdout)["apiKey"]
    port = free_port()
    gw_env = {
        **env,
        "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-bench-upstream",
        "DEXTO_GATEWAY_RATE_LIMIT_RPS": "1000000",
        "DEXTO_GATEWAY_RATE_LIMIT_BURST": "1000000",
        "DEXTO_GATEWAY_LOG_LEVEL": "WARNING",
    }
    argv = [*prefix, "gateway", "serve", "--db", db, "--upstream", upstream, "--port", str(port)]
    proc = Proc(argv, gw_env, work / f"{name}.log")
    wait_http(port, "/healthz", 60, proc.popen)
    return proc, port, key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=1500, help="requests per measurement")
    ap.add_argument("--baseline", default="/work/main", help="checkout with its own .venv")
    ap.add_argument("--no-aiohttp", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dexto-bench-up-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env["DEXTO_HOME"] = str(work / "home")
    py = sys.executable
    procs: list[Proc] = []
    samples: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    try:
        fake, up_port = start_fake_upstream(py, env, work)
        procs.append(fake)
        upstream = f"http://127.0.0.1:{up_port}/api/v1"
        base = Path(args.baseline)
        specs: list[tuple[str, list[str], Path]] = []
        if (base / ".venv" / "bin" / "python").exists():
            specs.append(
                ("baseline", [str(base / ".venv/bin/python"), "-m", "dexto.cli.main"], base)
            )
        specs.append(("ours", [py, "-m", "dexto.cli.main"], ROOT))
        if not args.no_aiohttp:
            specs.append(("aiohttp", [py, str(ROOT / "bench" / "_aiohttp_upstream.py")], ROOT))
        targets: list[tuple[str, Proc, int, str]] = []
        for name, prefix, cwd in specs:
            proc, port, key = start_gateway(name, prefix, cwd, env, work, upstream)
            procs.append(proc)
            targets.append((name, proc, port, key))
        for _, _, port, key in targets:  # warm-up
            for stream in (False, True):
                hdr = {"Authorization": f"Bearer {key}"}
                w = run_load(
                    "127.0.0.1",
                    port,
                    "/v1/chat/completions",
                    chat_body(stream),
                    hdr,
                    concurrency=8,
                    total=200,
                )
                if w.errors:
                    raise RuntimeError(f"warm-up errors: {w.statuses}")
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for stream in (False, True):
                for name, proc, port, key in order:
                    hdr = {"Authorization": f"Bearer {key}"}
                    cpu0 = proc.cpu_seconds()
                    res = run_load(
                        "127.0.0.1",
                        port,
                        "/v1/chat/completions",
                        chat_body(stream),
                        hdr,
                        concurrency=32,
                        total=args.requests,
                    )
                    cpu1 = proc.cpu_seconds()
                    done = len(res.latencies)
                    if res.errors:
                        print(f"{name}: {res.errors} errors {res.statuses}", file=sys.stderr)
                    samples.setdefault((name, stream), []).append(
                        (res.rps, (cpu1 - cpu0) * 1000 / max(1, done))
                    )
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.stop()

    def mmm(xs: list[float], fmt: str) -> str:
        return " / ".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))

    print(f"{'target':9} {'mode':10} {'c32 req/s min/med/max':>24} {'CPU ms/req min/med/max':>24}")
    report: list[dict[str, Any]] = []
    for (name, stream), rows in samples.items():
        rps = [r for r, _ in rows]
        cpu = [c for _, c in rows]
        mode = "stream" if stream else "non-stream"
        print(f"{name:9} {mode:10} {mmm(rps, '.0f'):>24} {mmm(cpu, '.2f'):>24}")
        report.append({"target": name, "stream": stream, "rps": rps, "cpu_ms_per_req": cpu})
    Path(args.out).mkdir(parents=True, exist_ok=True)
    target = Path(args.out) / f"upstream-client-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps(report, indent=2))
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
