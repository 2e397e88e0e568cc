"""In-process micro-benchmark: the upstream client and the metrics, previous vs this tree.

    .venv/bin/python bench/upstream_client_micro.py [--baseline /work/main] [--rounds 6]

Loads ``gateway/upstream_http.py`` and ``gateway/metrics.py`` from the ``--baseline`` checkout
next to this tree's, then, interleaved in alternating order: client CPU µs per request (1,500
non-streaming requests at concurrency 32 against ``dexto dev fake-upstream``, uvloop) and metrics
CPU µs per request (one ``request()`` and two ``inc()`` calls). Prints min / median / max.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_procs import start_fake_upstream  # noqa: E402
from dexto.gateway import metrics as new_metrics  # noqa: E402
from dexto.gateway import upstream_http as new_client  # noqa: E402

BODY = json.dumps(
    {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
).encode()


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def client_us(mod: Any, port: int, n: int = 1500, c: int = 32) -> float:
    extra = {"proxy": None} if mod is new_client else {}
    cl = mod.HttpClient(
        f"http://127.0.0.1:{port}/api/v1", connect_timeout=5, read_timeout=30, headers={}, **extra
    )
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            r = await cl.request(
                "POST", "chat/completions", BODY, {"Content-Type": "application/json"}
            )
            await r.aread()
            await r.aclose()

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(c)))
    spent = time.process_time() - t0
    await cl.aclose()
    return spent / n * 1e6


def metrics_us(mod: Any) -> float:
    m = mod.Metrics()

    def one() -> None:
        m.request("chat_completions", 200, 0.012)
        m.inc("holds_placed_total")
        m.inc("holds_settled_total")

    return min(timeit.repeat(one, number=20000, repeat=3)) / 20000 * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="/work/main")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    base = Path(args.baseline) / "src" / "dexto" / "gateway"
    old_client = load(base / "upstream_http.py", "baseline_upstream_http")
    old_metrics = load(base / "metrics.py", "baseline_metrics")
    work = Path(tempfile.mkdtemp(prefix="dexto-bench-micro-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    fake, port = start_fake_upstream(sys.executable, env, work)
    res: dict[str, list[float]] = {}
    try:
        pairs = [("previous", old_client, old_metrics), ("this", new_client, new_metrics)]
        for i in range(args.rounds):
            for name, client, metrics in pairs if i % 2 == 0 else pairs[::-1]:
                res.setdefault(f"{name} client", []).append(uvloop.run(client_us(client, port)))
                res.setdefault(f"{name} metrics", []).append(metrics_us(metrics))
    finally:
        fake.stop()
    for key, vals in sorted(res.items()):
        lo, med, hi = min(vals), statistics.median(vals), max(vals)
        print(f"{key:18} CPU µs/request min/med/max {lo:6.1f} / {med:6.1f} / {hi:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
