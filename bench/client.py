"""Client benchmark (issue 4): the execution client's own overhead and `dexto chat` start-up.

    .venv/bin/python bench/client.py [--runs 10] [--iterations 2000]

1. Overhead per request, excluding the network: the routing decision, building the request
   (adapter + JSON encoding) and parsing the response — timed as pure functions, and end to end
   through ``Model.complete``/``Model.stream`` over an in-memory ``httpx.MockTransport`` (which
   adds httpx's own client machinery). Target: median ≤ 1 ms.
2. ``dexto chat -m … --json`` as a whole process against a local gateway (fake upstream, SQLite):
   min/median/max wall time. Target ≤ 600 ms.
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
from collections.abc import Callable
from pathlib import Path

import httpx

SEL = "anthropic/claude-sonnet-4-5-20250929"
REPLY = {
    "id": "x",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello! " * 40},
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 80, "cost": 0.0012},
}
STREAM = (
    b"".join(
        b'data: {"choices":[{"index":0,"delta":{"content":"w' + str(i).encode() + b' "}}]}\n\n'
        for i in range(20)
    )
    + b'data: {"choices":[],"usage":{"prompt_tokens":3,"cost":0.001}}\n\n'
    + b"data: [DONE]\n\n"
)
MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Plan a three-step walk through Lisbon."},
]


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _report(name: str, xs: list[float], unit: float = 1e-3, label: str = "ms") -> None:
    xs = sorted(xs)
    p99 = xs[int(0.99 * (len(xs) - 1))]
    print(
        f"  {name:<52} min {xs[0] / unit:7.3f}  median {statistics.median(xs) / unit:7.3f}"
        f"  p99 {p99 / unit:7.3f}  max {xs[-1] / unit:7.3f} {label}"
    )


def bench_overhead(n: int) -> None:
    from dexto.llm.context import build_context
    from dexto.llm.execution import open_model
    from dexto.llm.execution.adapters import adapter_for
    from dexto.llm.routing import decide
    from dexto.llm.selection import parse_selection

    env = dict(
        os.environ,
        DEXTO_API_KEY="dxk_bench",
        ANTHROPIC_API_KEY="sk-ant-bench",
        DEXTO_GATEWAY_URL="http://gw.bench",
    )
    ctx, _ = build_context(env=env)
    sel = parse_selection(SEL)

    def reply(req: httpx.Request) -> httpx.Response:
        if json.loads(req.content).get("stream"):
            return httpx.Response(
                200,
                content=STREAM,
                headers={"content-type": "text/event-stream", "x-dexto-credits-remaining": "4.2"},
            )
        return httpx.Response(
            200, json=REPLY, headers={"x-dexto-credits-remaining": "4.2", "x-dexto-cost": "0.0012"}
        )

    model = open_model(SEL, env=env, transport=httpx.MockTransport(reply))
    target = model._primary
    adapter = adapter_for("openai")
    raw = json.dumps(REPLY).encode()

    def pure() -> None:
        decide(sel, ctx)
        call = adapter.build(target, list(MESSAGES), None, {"max_tokens": 300}, False)
        json.dumps(call.body, separators=(",", ":")).encode()
        adapter.parse(target, json.loads(raw))

    print("client overhead per request (no network):")
    _report("decision + build + encode + parse (pure)", _timed(pure, n))
    _report("decide() alone", _timed(lambda: decide(sel, ctx), n))
    _report("Model.complete via httpx MockTransport", _timed(lambda: model.complete(MESSAGES), n))
    _report(
        "Model.stream (20 chunks) via httpx MockTransport",
        _timed(lambda: list(model.stream(MESSAGES)), n),
    )
    model.close()


def bench_chat_process(runs: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from dexto.demo.stack import LocalStack

    dexto = str(Path(sys.executable).with_name("dexto"))
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp), direct=()) as stack:
        acct = stack.create_account("bench@example.com", "100")
        env = {**stack.env(), "DEXTO_API_KEY": acct.api_key, "DEXTO_GATEWAY_URL": stack.gateway_url}
        cmd = [dexto, "chat", SEL, "-m", "hello", "--json"]
        subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the page cache
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            assert done.returncode == 0 and json.loads(done.stdout)["route"]["route"] == "dexto"
    print(f"`dexto chat -m … --json` whole process via a local gateway ({runs} runs):")
    _report("wall time", times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=10)
    ns = ap.parse_args()
    home = tempfile.mkdtemp(prefix="dexto-bench-")
    os.environ["DEXTO_HOME"] = home  # never read the user's auth store or preferences
    bench_overhead(ns.iterations)
    bench_chat_process(ns.runs)


if __name__ == "__main__":
    main()
