"""Routing-core benchmarks (issue 2). Prints min/median/max for each figure.

    .venv/bin/python bench/routing.py

- decision: one ``decide()`` call with warm caches (target: median ≤ 10 µs);
- catalog build: registry + a 371-model marketplace list + 100 custom models (target ≤ 25 ms);
- ``dexto route … --json`` as a whole process (target ≤ 250 ms wall).
"""

from __future__ import annotations

import json
import os
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
from dexto.llm.marketplace import load_marketplace, write_cache  # noqa: E402
from dexto.llm.routing import decide  # noqa: E402
from dexto.llm.selection import parse_selection  # noqa: E402
from tests._samples import synthetic_rows  # noqa: E402


def summary(name: str, samples: list[float], unit: str, scale: float, target: str) -> None:
    s = sorted(x * scale for x in samples)
    print(
        f"{name:<34} min {s[0]:9.3f}  median {statistics.median(s):9.3f}  "
        f"max {s[-1]:9.3f} {unit}   (target {target}; n={len(s)})"
    )


def per_call(fn: Callable[[], object], inner: int, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


def setup_home(home: Path) -> DextoPaths:
    paths = DextoPaths(home)
    write_cache(paths, synthetic_rows(371))
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
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = setup_home(Path(tmp))
        env = {"DEXTO_API_KEY": "dxk_bench", "ANTHROPIC_API_KEY": "sk-bench"}
        ctx, state = build_context(env=env, paths=paths)
        for text in (
            "anthropic/claude-sonnet-4-5-20250929",
            "anthropic/claude-uncurated-9",
            "openrouter/z-ai/glm-4.5-air:free",
            "bedrock/anthropic.claude-v2",
        ):
            sel = parse_selection(text)
            try:
                decide(sel, ctx)
            except Exception:  # bedrock has no credentials here: also a decision
                pass
            if text.startswith("bedrock"):
                continue
            summary(
                f"decide {text[:26]}",
                per_call(lambda s=sel: decide(s, ctx), 2000, 25),
                "µs",
                1e6,
                "≤ 10 µs",
            )

        market = load_marketplace(paths)
        ctx2, state2 = build_context(env=env, paths=paths, marketplace=market)

        def build() -> object:
            return build_catalog(ctx2, state2.preferences, state2.custom_models)

        n_models = sum(len(p["models"]) for p in build()["providers"].values())  # type: ignore[index]
        summary(f"catalog build ({n_models} models)", per_call(build, 5, 20), "ms", 1e3, "≤ 25 ms")

        def cold() -> object:
            c, s = build_context(env=env, paths=paths)
            return build_catalog(c, s.preferences, s.custom_models)

        summary("catalog incl. reading files", per_call(cold, 3, 10), "ms", 1e3, "(info)")

        exe = str(Path(sys.executable).with_name("dexto"))
        penv = {**os.environ, **env, "DEXTO_HOME": tmp}
        walls = []
        for _ in range(15):
            t0 = time.perf_counter()
            subprocess.run(
                [exe, "route", "anthropic/claude-sonnet-4-5-20250929", "--json"],
                env=penv,
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - t0)
        summary("dexto route --json (process)", walls, "ms", 1e3, "≤ 250 ms")


if __name__ == "__main__":
    main()
