"""Benchmark of the agent server: ``GET /llm/catalog`` latency and time-to-interactive of the page.

Set-up (all synthetic, generated here): a private DEXTO_HOME with a 371-model OpenRouter-shaped
marketplace cache, 100 custom models, a Dexto key and one provider key; the real ``dexto serve``
runs in a subprocess on a free loopback port. Budgets (issue 6): catalog ≤ 15 ms median; page
interactive ≤ 1 s after load (measured in Debian's Chromium with ``performance.now()`` when the
picker has rendered).

    .venv/bin/python bench/server.py [--requests 300] [--page-loads 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CATALOG_BUDGET_MS = 15.0
INTERACTIVE_BUDGET_MS = 1000.0
CHROMIUM = "/usr/bin/chromium"
AGENT = """\
# bench agent
llm:
  provider: anthropic
  model: claude-sonnet-4-5-20250929
"""
VENDORS = ("acme", "zeta", "nova", "orbit", "delta", "anthropic", "openai", "google", "x-ai")


def marketplace_rows(n: int) -> list[dict[str, Any]]:
    """``n`` OpenRouter ``/api/v1/models`` rows (synthetic; not copied from any real list)."""
    rows = []
    for i in range(n):
        vendor = VENDORS[i % len(VENDORS)]
        mid = f"{vendor}/model-{i}" + (":free" if i % 17 == 0 else "")
        rows.append(
            {
                "id": mid,
                "canonical_slug": f"{vendor}/model-{i}-2026{i % 12 + 1:02d}01",
                "name": f"{vendor.title()}: Model {i}",
                "context_length": 32_000 + 1000 * (i % 200),
                "pricing": {
                    "prompt": "0" if mid.endswith(":free") else f"{(i % 9 + 1) / 1e6:.7f}",
                    "completion": "0" if mid.endswith(":free") else f"{(i % 7 + 2) / 1e6:.7f}",
                },
                "architecture": {"input_modalities": ["text", "image"] if i % 3 == 0 else ["text"]},
                "top_provider": {"context_length": 32_000, "max_completion_tokens": 8192},
                "supported_parameters": ["tools", "max_tokens"] if i % 2 == 0 else ["max_tokens"],
            }
        )
    return rows


def custom_models(n: int) -> dict[str, Any]:
    models = []
    for i in range(n):
        if i % 2 == 0:
            models.append(
                {
                    "name": f"custom-vendor/custom-{i}",
                    "provider": "openrouter",
                    "displayName": f"Custom {i}",
                }
            )
        else:
            models.append(
                {
                    "name": f"local-model-{i}",
                    "provider": "openai-compatible",
                    "baseURL": f"http://127.0.0.1:{8000 + i}/v1",
                }
            )
    return {"version": 1, "models": models}


def prepare(home: Path) -> Path:
    (home / "cache").mkdir(parents=True)
    (home / "models").mkdir()
    payload = {"fetchedAt": time.time(), "source": "bench", "data": marketplace_rows(371)}
    (home / "cache" / "openrouter-models.json").write_text(json.dumps(payload))
    (home / "models" / "custom-models.json").write_text(json.dumps(custom_models(100)))
    agent = home / "bench-agent.yml"
    agent.write_text(AGENT)
    return agent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, agent: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("DEXTO_") or k.endswith("_API_KEY"))
    }
    env.update(
        DEXTO_HOME=str(home),
        DEXTO_API_KEY="dxk_bench_0123456789",
        OPENAI_API_KEY="sk-bench-0123456789",
    )
    dexto = str(Path(sys.executable).with_name("dexto"))
    proc = subprocess.Popen(
        [dexto, "serve", "--agent", str(agent), "--port", str(port), "--no-refresh"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("dexto serve did not start")


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        resp = client.get(path)
        resp.raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(name: str, ms: list[float], budget: float | None = None) -> str:
    s = sorted(ms)
    line = (
        f"{name:<44} n={len(s):<4} min {s[0]:7.2f}  median {statistics.median(s):7.2f}  "
        f"p95 {s[int(len(s) * 0.95) - 1 if len(s) > 1 else 0]:7.2f}  max {s[-1]:7.2f} ms"
    )
    if budget is not None:
        ok = statistics.median(s) <= budget
        line += f"   budget {budget:g} ms: {'OK' if ok else 'OVER'}"
    return line


def bench_api(url: str, home: Path, n: int) -> list[str]:
    lines = []
    with httpx.Client(base_url=url, timeout=30) as client:
        first = timed(client, "/llm/catalog", 1)
        body = client.get("/llm/catalog").json()
        count = sum(len(p["models"]) for p in body["providers"].values())
        lines.append(
            f"catalog: {len(body['providers'])} providers, {count} models, "
            f"{len(client.get('/llm/catalog').content) / 1024:.0f} KiB"
        )
        lines.append(summary("GET /llm/catalog (first, builds the answer)", first))
        lines.append(
            summary("GET /llm/catalog (warm)", timed(client, "/llm/catalog", n), CATALOG_BUDGET_MS)
        )
        rebuilt = []
        for i in range(max(5, n // 20)):
            (home / "preferences.yml").write_text(f"# touch {i}\nlowCreditsWarningUsd: 0.5\n")
            rebuilt += timed(client, "/llm/catalog", 1)
        lines.append(summary("GET /llm/catalog (after a file change)", rebuilt))
        lines.append(
            summary(
                "GET /llm/catalog?search=model 1",
                timed(client, "/llm/catalog?search=model%201", max(20, n // 10)),
            )
        )
        lines.append(summary("GET /llm/current", timed(client, "/llm/current", n // 2)))
        lines.append(
            summary(
                "GET /llm/validate",
                timed(client, "/llm/validate?provider=openrouter&model=acme/model-9", n // 2),
            )
        )
    return lines


def bench_page(url: str, loads: int) -> list[str]:
    if not Path(CHROMIUM).exists():
        return [f"page: skipped ({CHROMIUM} missing)"]
    from playwright.sync_api import sync_playwright

    marks, loaded = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        for _ in range(loads):
            ctx = browser.new_context(viewport={"width": 1360, "height": 900})
            page = ctx.new_page()
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=10_000)
            marks.append(float(page.evaluate("document.body.dataset.interactiveMs")))
            loaded.append(
                float(
                    page.evaluate(
                        "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                    )
                )
            )
            ctx.close()
        browser.close()
    return [
        summary("page: DOMContentLoaded", loaded),
        summary("page: picker interactive (performance.now)", marks, INTERACTIVE_BUDGET_MS),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--page-loads", type=int, default=5)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dexto-bench-server-") as tmp:
        home = Path(tmp) / "home"
        agent = prepare(home)
        proc, url = start_server(home, agent)
        try:
            print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
            for line in bench_api(url, home, ns.requests) + bench_page(url, ns.page_loads):
                print(line)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
