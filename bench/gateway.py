"""Gateway benchmark: direct (client → fake upstream), ours (client → dexto gateway on SQLite →
fake upstream) and LiteLLM's proxy (1 worker, master key → the same fake upstream), same run.

    .venv/bin/python bench/gateway.py [--quick] [--no-litellm] [--litellm-venv /tmp/…]

Reports, for non-streaming and 20-chunk streaming requests: req/s at concurrency 32, p50/p99
latency at concurrency 1 and the latency *added* over direct, server CPU per request (from
/proc, utime+stime of the server's process tree, during the concurrency-32 phase) and RSS.
LiteLLM is installed by this script into a throwaway venv under /tmp. Loopback only; every
loop is bounded by a request count.

The scale-out targets of issue #14 (PostgreSQL vs SQLite, direct path, CPU per request,
LiteLLM, RSS soak), each with min/median/max, target and met/not met, are printed by
``bench/targets.py`` (one command; it reuses this script's LiteLLM set-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import MODEL, chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def ensure_litellm(venv: Path) -> Path:
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    if not exe.exists():
        raise RuntimeError("pip installed litellm but no litellm executable appeared")
    return exe


def start_litellm(venv: Path, env: dict[str, str], work: Path, up_port: int) -> tuple[Proc, int]:
    """LiteLLM's proxy (1 worker, master key ``sk-bench-master``) in front of the fake upstream,
    installed into ``venv`` if needed, answering: (process, port). Offline: the model cost map
    is LiteLLM's bundled copy."""
    exe = ensure_litellm(venv)
    port = free_port()
    cfg = work / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{up_port}/api/v1\n"
        "      api_key: sk-fake\n"
        "general_settings:\n  master_key: sk-bench-master\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    lite_env = {**env, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    lite = Proc(argv, lite_env, work / "litellm.log")
    try:
        wait_http(port, "/health/liveliness", 180, lite.popen)
    except BaseException:
        lite.stop()
        raise
    return lite, port


def measure(
    name: str,
    proc: Proc | None,
    port: int,
    path: str,
    headers: dict[str, str],
    stream: bool,
    n1: int,
    n32: int,
) -> dict[str, Any]:
    b = chat_body(stream)
    warm = run_load("127.0.0.1", port, path, b, headers, concurrency=4, total=max(50, n1 // 4))
    if warm.errors:
        raise RuntimeError(f"{name}: warm-up had {warm.errors} errors {warm.statuses}")
    seq = run_load("127.0.0.1", port, path, b, headers, concurrency=1, total=n1)
    cpu0 = proc.cpu_seconds() if proc else 0.0
    par = run_load("127.0.0.1", port, path, b, headers, concurrency=32, total=n32)
    cpu1 = proc.cpu_seconds() if proc else 0.0
    done = len(par.latencies)
    return {
        "target": name,
        "stream": stream,
        "c1_p50_ms": seq.pct(0.5) * 1000,
        "c1_p99_ms": seq.pct(0.99) * 1000,
        "c32_rps": par.rps,
        "c32_errors": par.errors + seq.errors,
        "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / done if proc and done else None,
        "rss_mb": proc.rss_mb() if proc else None,
        "requests": {"c1": len(seq.latencies), "c32": done},
    }


def start_gateway(
    py: str, work: Path, name: str, env: dict[str, str], up_port: int
) -> tuple[Proc, int, str]:
    """A gateway on its own SQLite file with one funded account: (process, port, key)."""
    db = f"sqlite:///{work / (name + '.db')}"
    out = subprocess.run(
        [
            py,
            "-m",
            "dexto.cli.main",
            "gateway",
            "accounts",
            "create",
            "--db",
            db,
            "--email",
            "bench@example.com",
            "--credits",
            "1000000",
            "--json",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = json.loads(out.stdout)["apiKey"]
    gw_port = free_port()
    gw_env = {
        **env,
        "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-bench-upstream",
        "DEXTO_GATEWAY_RATE_LIMIT_RPS": "1000000",
        "DEXTO_GATEWAY_RATE_LIMIT_BURST": "1000000",
        "DEXTO_GATEWAY_LOG_LEVEL": "WARNING",
    }
    gw = Proc(
        [
            py,
            "-m",
            "dexto.cli.main",
            "gateway",
            "serve",
            "--db",
            db,
            "--upstream",
            f"http://127.0.0.1:{up_port}/api/v1",
            "--port",
            str(gw_port),
        ],
        gw_env,
        work / f"{name}.log",
    )
    wait_http(gw_port, "/healthz", 30, gw.popen)
    return gw, gw_port, key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--litellm-venv", default="/tmp/dexto-bench-litellm")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also measure the gateway of another checkout (its .venv), interleaved with ours",
    )
    ap.add_argument("--rounds", type=int, default=1, help="ours/baseline rounds per mode")
    args = ap.parse_args()
    n1, n32 = (100, 400) if args.quick else (500, 3000)
    ln1, ln32 = (40, 120) if args.quick else (150, 600)

    work = Path(tempfile.mkdtemp(prefix="dexto-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env["DEXTO_HOME"] = str(work / "home")
    procs: list[Proc] = []
    results: list[dict[str, Any]] = []
    litellm_note = ""
    try:
        fake, up_port = start_fake_upstream(PY, env, work)
        procs.append(fake)

        gw, gw_port, key = start_gateway(PY, work, "gateway", env, up_port)
        procs.append(gw)
        base: tuple[Proc, int, str] | None = None
        if args.baseline:
            base_py = str(Path(args.baseline) / ".venv" / "bin" / "python")
            base = start_gateway(base_py, work, "baseline", env, up_port)
            procs.append(base[0])

        lite: Proc | None = None
        lite_port = 0
        if not args.no_litellm:
            try:
                lite, lite_port = start_litellm(Path(args.litellm_venv), env, work, up_port)
                procs.append(lite)
            except Exception as exc:  # noqa: BLE001 - report why and carry on without it
                litellm_note = f"LiteLLM not measured: {type(exc).__name__}: {exc}"
                lite = None

        for stream in (False, True):
            results.append(
                measure(
                    "direct",
                    fake,
                    up_port,
                    "/api/v1/chat/completions",
                    {"Authorization": "Bearer sk-or-direct"},
                    stream,
                    n1,
                    n32,
                )
            )
            for _ in range(args.rounds):  # ours and the baseline interleaved, round by round
                results.append(
                    measure(
                        "ours",
                        gw,
                        gw_port,
                        "/v1/chat/completions",
                        {"Authorization": f"Bearer {key}"},
                        stream,
                        n1,
                        n32,
                    )
                )
                if base is not None:
                    results.append(
                        measure(
                            "baseline",
                            base[0],
                            base[1],
                            "/v1/chat/completions",
                            {"Authorization": f"Bearer {base[2]}"},
                            stream,
                            n1,
                            n32,
                        )
                    )
            if lite is not None:
                try:
                    results.append(
                        measure(
                            "litellm",
                            lite,
                            lite_port,
                            "/v1/chat/completions",
                            {"Authorization": "Bearer sk-bench-master"},
                            stream,
                            ln1,
                            ln32,
                        )
                    )
                except Exception as exc:  # noqa: BLE001
                    litellm_note = f"LiteLLM failed during the run: {exc}"
    finally:
        for p in reversed(procs):
            p.stop()

    direct = {r["stream"]: r for r in results if r["target"] == "direct"}
    for r in results:
        r["added_p50_ms"] = r["c1_p50_ms"] - direct[r["stream"]]["c1_p50_ms"]
        r["added_p99_ms"] = r["c1_p99_ms"] - direct[r["stream"]]["c1_p99_ms"]
    print(
        f"{'target':8} {'mode':10} {'c32 req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'+p50 ms':>8} {'+p99 ms':>8} {'CPU ms/req':>10} {'RSS MB':>7} {'errors':>6}"
    )
    for r in results:
        cpu = f"{r['cpu_ms_per_req']:.2f}" if r["cpu_ms_per_req"] is not None else "-"
        rss = f"{r['rss_mb']:.0f}" if r["rss_mb"] is not None else "-"
        print(
            f"{r['target']:8} {'stream' if r['stream'] else 'non-stream':10} "
            f"{r['c32_rps']:10.0f} {r['c1_p50_ms']:8.2f} {r['c1_p99_ms']:8.2f} "
            f"{r['added_p50_ms']:8.2f} {r['added_p99_ms']:8.2f} {cpu:>10} {rss:>7} "
            f"{r['c32_errors']:6d}"
        )
    for stream in (False, True):
        ours = next(r for r in results if r["target"] == "ours" and r["stream"] == stream)
        lite_r = next(
            (r for r in results if r["target"] == "litellm" and r["stream"] == stream), None
        )
        if lite_r and lite_r["c32_rps"]:
            print(
                f"{'stream' if stream else 'non-stream'}: ours / LiteLLM throughput = "
                f"{ours['c32_rps'] / lite_r['c32_rps']:.1f}x"
            )
    for stream in (False, True):
        rows = {
            t: [r for r in results if r["target"] == t and r["stream"] == stream]
            for t in ("ours", "baseline")
        }
        if not rows["baseline"]:
            continue
        for field in ("c32_rps", "cpu_ms_per_req"):
            vals = {
                t: sorted(r[field] for r in rs if r[field] is not None) for t, rs in rows.items()
            }
            line = ", ".join(
                f"{t} min/median/max {v[0]:.2f}/{v[len(v) // 2]:.2f}/{v[-1]:.2f}"
                for t, v in vals.items()
                if v
            )
            print(f"{'stream' if stream else 'non-stream'} {field}: {line}")
    if litellm_note:
        print(litellm_note)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    target = Path(args.out) / f"gateway-{time.strftime('%Y%m%dT%H%M%S')}.json"
    target.write_text(json.dumps({"results": results, "note": litellm_note}, indent=2))
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
