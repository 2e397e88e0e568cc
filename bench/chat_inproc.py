"""In-process CPU per chat request: the gateway app driven over ASGI, no sockets.

    .venv/bin/python bench/chat_inproc.py [--baseline DIR] [--rounds 5] [--requests 3000]

Each run starts a child process per tree (this one, and ``DIR`` with ``DIR/.venv``'s Python):
a real SQLite gateway (1 account, 1 worker) whose upstream client is replaced by canned
responses recorded once from ``dexto dev fake-upstream``'s app (non-streaming, and a 20-chunk
stream with usage). The child sends ``--requests`` chat requests straight into the ASGI app at
concurrency 32 and prints ``time.process_time()`` per request. No HTTP parsing, no upstream
client: what is left is the gateway's own request path (validation, hold, relay, settlement,
metrics, log). Trees run alternately; prints min/median/max µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "openai/gpt-4o-mini"


def chat_body(stream: bool) -> bytes:
    doc: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello in one line."}],
    }
    if stream:
        doc["stream"] = True
    return json.dumps(doc).encode()


async def _asgi_call(
    app: Any, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    sent = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    cycle = _Cycle()
    await app(scope, receive, cycle.send)
    gone.set()
    return cycle.status, cycle.headers, cycle.chunks


class _Cycle:
    """Collects one answer; ``send`` is a bound method of an object with ``response_started``,
    as uvicorn's request cycle is (the gateway's error guard then adds no wrapper)."""

    def __init__(self) -> None:
        self.response_started = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))


def record(out: Path) -> None:
    """Canned upstream answers from this tree's fake upstream app (JSON file)."""
    from dexto.devtools.fake_upstream import create_app

    async def go() -> dict[str, Any]:
        fake = create_app()
        hdr = [(b"content-type", b"application/json")]
        _, _, models = await _asgi_call(fake, "GET", "/models", b"", [])
        rec: dict[str, Any] = {"models": b"".join(models).decode()}
        for stream in (False, True):
            doc = json.loads(chat_body(stream))
            doc["usage"] = {"include": True}
            if stream:
                doc["stream_options"] = {"include_usage": True}
            st, h, chunks = await _asgi_call(
                fake, "POST", "/chat/completions", json.dumps(doc).encode(), hdr
            )
            assert st == 200, st
            ctype = dict(h).get(b"content-type", b"application/json").decode()
            rec["stream" if stream else "plain"] = {
                "content_type": ctype,
                "chunks": [c.decode() for c in chunks if c],
            }
        return rec

    out.write_text(json.dumps(asyncio.run(go())))


def child(canned_path: Path, db: str, key: str, stream: bool, n: int, conc: int) -> None:
    """Run ``n`` requests into this tree's app; print CPU µs per request (one JSON line)."""
    from dexto.gateway import upstream as up_mod
    from dexto.gateway.app import create_app
    from dexto.gateway.settings import GatewaySettings

    canned = json.loads(canned_path.read_text())
    answer = canned["stream" if stream else "plain"]
    chunks = [c.encode() for c in answer["chunks"]]

    class Resp:
        status_code = 200

        def __init__(self) -> None:
            self.headers = {"content-type": answer["content_type"]}

        async def aread(self) -> bytes:
            return b"".join(chunks)

        async def aiter_raw(self) -> Any:
            for c in chunks:
                yield c

        async def aclose(self) -> None:
            return None

    async def open_chat(self: Any, body: bytes, headers: dict[str, str]) -> Resp:
        return Resp()

    async def get_models(self: Any) -> bytes:
        return str(canned["models"]).encode()

    up_mod.Upstream.open_chat = open_chat  # type: ignore[assignment,method-assign]
    up_mod.Upstream.get_models = get_models  # type: ignore[method-assign]

    settings = GatewaySettings.resolve(
        env={
            "DEXTO_GATEWAY_DB": db,
            "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-or-bench",
            "DEXTO_GATEWAY_RATE_LIMIT_RPS": "1000000",
            "DEXTO_GATEWAY_RATE_LIMIT_BURST": "1000000",
            "DEXTO_GATEWAY_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    app = create_app(settings)
    body = chat_body(stream)
    hdr = [
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def go() -> float:
        life_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        life_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await life_in.put({"type": "lifespan.startup"})
        life = asyncio.ensure_future(app({"type": "lifespan"}, life_in.get, life_out.put))
        started = await life_out.get()
        assert started["type"] == "lifespan.startup.complete", started

        async def batch(total: int) -> None:
            left = [total]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    st, _, _ = await _asgi_call(app, "POST", "/v1/chat/completions", body, hdr)
                    if st != 200:
                        raise RuntimeError(f"status {st}")

            await asyncio.gather(*(worker() for _ in range(conc)))

        await batch(int(os.environ.get("BENCH_WARM", "0")) or max(200, n // 5))  # warm-up
        if os.environ.get("BENCH_GC_FREEZE"):
            import gc

            gc.freeze()  # what a server could do once started: old objects never rescanned
        prof = os.environ.get("BENCH_PROFILE")
        if prof:
            import cProfile

            pr = cProfile.Profile()
            pr.enable()
        t0 = time.process_time()
        await batch(n)
        cpu = time.process_time() - t0
        if prof:
            pr.disable()
            pr.dump_stats(prof)
        await life_in.put({"type": "lifespan.shutdown"})
        await life_out.get()
        await life
        return cpu

    cpu = asyncio.run(go())
    print(json.dumps({"us_per_req": cpu / n * 1e6}))


def make_account(py: str, db: str, cwd: Path) -> str:
    out = subprocess.run(
        [py, "-m", "dexto.cli.main", "gateway", "accounts", "create", "--db", db]
        + ["--email", "bench@example.com", "--credits", "1000000", "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return str(json.loads(out.stdout)["apiKey"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="a checkout with its own .venv")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--only", choices=("plain", "stream"))
    ap.add_argument("--child", nargs=4, metavar=("CANNED", "DB", "KEY", "STREAM"))
    ns = ap.parse_args()
    if ns.child:
        canned, db, key, stream = ns.child
        child(Path(canned), db, key, stream == "1", ns.requests, ns.concurrency)
        return 0
    trees: list[tuple[str, str, Path]] = [("ours", sys.executable, ROOT)]
    if ns.baseline:
        trees.append(("old", str(ns.baseline / ".venv" / "bin" / "python"), ns.baseline))
    kinds = [ns.only] if ns.only else ["plain", "stream"]
    with tempfile.TemporaryDirectory(prefix="dexto-inproc-") as tmp:
        work = Path(tmp)
        canned = work / "canned.json"
        record(canned)
        accounts = {}
        for name, py, cwd in trees:
            db = f"sqlite:///{work / (name + '.db')}"
            accounts[name] = (db, make_account(py, db, cwd))
        results: dict[tuple[str, str], list[float]] = {}
        for r in range(ns.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            for kind in kinds:
                for name, py, cwd in order:
                    db, key = accounts[name]
                    argv = [py, str(Path(__file__).resolve()), "--requests", str(ns.requests)]
                    argv += ["--concurrency", str(ns.concurrency), "--child", str(canned), db, key]
                    argv.append("1" if kind == "stream" else "0")
                    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
                    out = subprocess.run(
                        argv, check=True, capture_output=True, text=True, cwd=cwd, env=env
                    )
                    us = json.loads(out.stdout.strip().splitlines()[-1])["us_per_req"]
                    results.setdefault((kind, name), []).append(us)
        for kind in kinds:
            for name, _, _ in trees:
                xs = sorted(results[(kind, name)])
                print(
                    f"{kind:6} {name:5} µs/req min {xs[0]:7.1f} median "
                    f"{statistics.median(xs):7.1f} max {xs[-1]:7.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
