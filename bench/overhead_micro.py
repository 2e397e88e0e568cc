"""In-process micro-benchmark: per-request metrics and access-log cost, previous vs this tree.

    .venv/bin/python bench/overhead_micro.py --baseline DIR [--rounds 8]

``DIR`` is a checkout (e.g. ``git archive wip/h10b src | tar -x -C DIR``). Loads its
``gateway/metrics.py`` and ``gateway/logs.py`` next to this tree's and measures, in alternating
order: metrics CPU µs per request (one ``request()`` and two ``inc()`` calls, single-process
registry) and one INFO access log line (all fields, JSON to /dev/null). Prints min/median/max.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

from dexto.gateway import logs as new_logs
from dexto.gateway import metrics as new_metrics

FIELDS: dict[str, Any] = {
    "request_id": "req_0123456789abcdef01234567",
    "account": "acct_b456d78afb2343868157",
    "key_id": "key_c8a2b3f4d8ac411ab72b",
    "model": "openai/gpt-4o-mini",
    "stream": False,
    "status": 200,
    "prompt_tokens": 11,
    "completion_tokens": 20,
    "cost_micros": 14,
    "hold_micros": 2471,
    "written_off_micros": None,
    "estimated": False,
    "latency_ms": 0.55,
}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def metrics_us(mod: Any) -> float:
    m = mod.Metrics()

    def one() -> None:
        m.request("chat_completions", 200, 0.012)
        m.inc("holds_placed_total")
        m.inc("holds_settled_total")

    return min(timeit.repeat(one, number=20000, repeat=3, timer=time.process_time)) / 20000 * 1e6


def log_us(mod: Any, name: str, sink: Any) -> float:
    logger = logging.getLogger(f"bench.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(mod.JsonFormatter())
        logger.addHandler(handler)

    def one() -> None:
        mod.log_event(logger, "chat.completions", **FIELDS)

    return min(timeit.repeat(one, number=5000, repeat=3, timer=time.process_time)) / 5000 * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    base = Path(args.baseline) / "src" / "dexto" / "gateway"
    old_metrics = load(base / "metrics.py", "baseline_metrics")
    old_logs = load(base / "logs.py", "baseline_logs")
    res: dict[str, list[float]] = {}
    pairs = [("previous", old_metrics, old_logs), ("this", new_metrics, new_logs)]
    with open(os.devnull, "w") as sink:
        for i in range(args.rounds):
            for name, metrics, logs in pairs if i % 2 == 0 else pairs[::-1]:
                res.setdefault(f"{name} metrics", []).append(metrics_us(metrics))
                res.setdefault(f"{name} log line", []).append(log_us(logs, name, sink))
    for key, vals in sorted(res.items()):
        lo, med, hi = min(vals), statistics.median(vals), max(vals)
        print(f"{key:18} CPU µs/request min/med/max {lo:6.1f} / {med:6.1f} / {hi:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
