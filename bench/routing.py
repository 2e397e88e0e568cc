"""Routing-core benchmarks (issues 2 and 12). Prints min/median/max for each figure.

    .venv/bin/python bench/routing.py

- decision: one ``decide()`` call with warm caches and the bundled marketplace snapshot loaded
  (target: median ≤ 10 µs), for a curated ID, a catalog-matched ID, and marketplace selections;
- catalog build: registry + 400 marketplace rows (the bundled snapshot plus synthetic rows) +
  100 custom models (target ≤ 25 ms);
- ``dexto route … --json`` as a whole process, with no cache (target ≤ 250 ms wall).
Peers of one figure run interleaved, round by round, in the same process (the machine is shared).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dexto.config.paths import DextoPaths  # noqa: E402
from dexto.llm.catalog import build_catalog  # noqa: E402
from dexto.llm.context import build_context  # noqa: E402
from dexto.llm.marketplace import bundled_catalog, load_marketplace, write_cache  # noqa: E402
from dexto.llm.routing import decide  # noqa: E402
from dexto.llm.selection import parse_selection  # noqa: E402
from dexto.llm.snapshot import load_bundled  # noqa: E402
from tests._samples import synthetic_rows  # noqa: E402


def summary(name: str, samples: list[float], unit: str, scale: float, target: str) -> None:
    s = sorted(x * scale for x in samples)
    print(
        f"{name:<44} min {s[0]:9.3f}  median {statistics.median(s):9.3f}  "
        f"max {s[-1]:9.3f} {unit}   (target {target}; n={len(s)})"
    )


def interleaved(
    fns: dict[str, Callable[[], object]],
    inner: int,
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(inner):
                fn()
            out[name].append((clock() - t0) / inner)
    return out


def child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def write_customs(paths: DextoPaths) -> None:
    models = [{"name": f"acme/custom-{i}", "provider": "openrouter"} for i in range(90)]
    models += [
        {
            "name": f"local-{i}",
            "provider": "openai-compatible",
            "baseURL": "http://127.0.0.1:8000/v1",
        }
        for i in range(10)
    ]
    paths.custom_models.parent.mkdir(parents=True, exist_ok=True)
    paths.custom_models.write_text(json.dumps({"version": 1, "models": models}))


def main() -> None:
    env = {"DEXTO_API_KEY": "dxk_bench", "ANTHROPIC_API_KEY": "sk-bench"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = DextoPaths(Path(tmp))  # no cache: the bundled snapshot answers
        write_customs(paths)
        ctx, _ = build_context(env=env, paths=paths)
        cases = {
            "curated anthropic/claude-sonnet-4-5": "anthropic/claude-sonnet-4-5-20250929",
            "matched anthropic/claude-3-7-sonnet": "anthropic/claude-3-7-sonnet-20250219",
            "unlisted anthropic/claude-uncurated-9": "anthropic/claude-uncurated-9",
            "openrouter z-ai/glm-4.5-air:free": "openrouter/z-ai/glm-4.5-air:free",
            "openrouter anthropic/claude-3.7-sonnet": "openrouter/anthropic/claude-3.7-sonnet",
        }
        sels = {k: parse_selection(v) for k, v in cases.items()}
        for sel in sels.values():
            decide(sel, ctx)  # warm: loads the snapshot and builds its index once
        assert load_bundled.cache_info().currsize == 1
        fns = {k: (lambda s=s: decide(s, ctx)) for k, s in sels.items()}
        for clock, label in ((time.perf_counter, "wall"), (time.process_time, "cpu")):
            res = interleaved(fns, 2000, 25, clock)
            for k, samples in res.items():
                summary(f"decide {k} [{label}]", samples, "µs", 1e6, "≤ 10 µs")

        cache_home = Path(tmp) / "with-cache"
        cpaths = DextoPaths(cache_home)
        write_customs(cpaths)
        rows = [json.loads(json.dumps(r)) for r in load_bundled().rows]
        write_cache(cpaths, rows + synthetic_rows(400 - len(rows)))
        market = load_marketplace(cpaths)
        ctx2, state2 = build_context(env=env, paths=cpaths, marketplace=market)

        def build() -> object:
            return build_catalog(ctx2, state2.preferences, state2.custom_models)

        def cold() -> object:
            c, s = build_context(env=env, paths=cpaths)
            return build_catalog(c, s.preferences, s.custom_models)

        n_models = sum(len(p["models"]) for p in build()["providers"].values())  # type: ignore[index]
        for clock, label in ((time.perf_counter, "wall"), (time.process_time, "cpu")):
            res = interleaved({"build": build, "cold": cold}, 3, 15, clock)
            summary(
                f"catalog build ({len(market.models)} mkt, {n_models} rows) [{label}]",
                res["build"],
                "ms",
                1e3,
                "≤ 25 ms",
            )
            summary(f"catalog incl. reading files [{label}]", res["cold"], "ms", 1e3, "(info)")
        print(f"(bundled snapshot: {len(bundled_catalog().models)} models)")

        exe = str(Path(sys.executable).with_name("dexto"))
        penv = {**os.environ, **env, "DEXTO_HOME": tmp}
        runs = {
            "dexto route curated --json (process)": "anthropic/claude-sonnet-4-5-20250929",
            "dexto route matched --json (process)": "anthropic/claude-3-7-sonnet-20250219",
        }
        walls: dict[str, list[float]] = {k: [] for k in runs}
        cpus: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(12):
            for name, sel in runs.items():
                t0, c0 = time.perf_counter(), child_cpu()
                subprocess.run(
                    [exe, "route", sel, "--json"], env=penv, check=True, capture_output=True
                )
                walls[name].append(time.perf_counter() - t0)
                cpus[name].append(child_cpu() - c0)
        for name in runs:
            summary(name + " [wall]", walls[name], "ms", 1e3, "≤ 250 ms")
            summary(name + " [cpu]", cpus[name], "ms", 1e3, "≤ 250 ms")
        print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
