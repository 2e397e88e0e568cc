"""Instructions per request of the gateway (1 worker) under callgrind, for several refs.

    .venv/bin/python bench/gateway_callgrind.py [--requests 600] [--concurrency 1,32] \
        [--variant NAME=REF]... [--pg URL]

Each variant (the ``src/`` tree of a git ref, ``WORKTREE`` for this working tree, as in
``bench/gateway_ab.py``) runs ``dexto gateway serve`` under ``valgrind --tool=callgrind`` with
instrumentation off; after a warm-up, instrumentation is switched on (``callgrind_control -i
on``) for exactly ``--requests`` non-streaming requests at each concurrency, then dumped. Prints
instructions (Ir) per request: a CPU measure that does not depend on other load on the machine
(it does depend on how requests interleave, e.g. how many share a group commit).

SQLite by default; with ``--pg URL`` each variant gets a PostgreSQL schema of its own (made and
given its account by that variant's code, dropped afterwards). Only the gateway process is
counted, not the PostgreSQL backends.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gateway_load import chat_body, run_load  # noqa: E402
from _gateway_procs import Proc, free_port, start_fake_upstream, wait_http  # noqa: E402
from gateway_ab import BENCH_GW_ENV, prepare_variant, serve_argv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PATH = "/v1/chat/completions"


def _control(*args: str, cwd: Path) -> None:
    subprocess.run(["callgrind_control", *args], cwd=cwd, check=True, capture_output=True)


def _total_ir(out: Path) -> int:
    total = 0
    for f in out.parent.glob(out.name + ".*"):  # the explicit dumps (not the one at exit)
        m = re.search(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"), re.M)
        if m:
            total += int(m.group(1))
    return total


def _pg_schema(base: str, schema: str) -> str:
    """Create ``schema`` on ``base``; the URL whose sessions use it."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--variant", action="append", help="NAME=REF")
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dexto-bench-cg-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEXTO_", "PROMETHEUS_"))}
    env["DEXTO_HOME"] = str(work / "home")
    body = chat_body()
    results: dict[str, dict[int, float]] = {}
    fake, up_port = start_fake_upstream(PY, {**env, "PYTHONPATH": str(ROOT / "src")}, work)
    schemas: list[str] = []
    try:
        for spec in args.variant or ["main=main", "this=WORKTREE"]:
            name, _, ref = spec.partition("=")
            pg_url = None
            if args.pg:
                schemas.append(f"dexto_cg_{uuid.uuid4().hex[:10]}")
                pg_url = _pg_schema(args.pg, schemas[-1])
            venv, db, key = prepare_variant(name, ref, work, env, pg_url)
            auth = {"Authorization": f"Bearer {key}"}
            port = free_port()
            gw_env = {**venv, **BENCH_GW_ENV, "DEXTO_GATEWAY_LOG_LEVEL": "WARNING"}
            results[name] = {}
            for c in (int(x) for x in args.concurrency.split(",")):
                cwd = work / f"{name}-c{c}"
                cwd.mkdir()
                out = cwd / "callgrind.out"
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
                argv += [f"--callgrind-out-file={out}", *serve_argv(db, port, up_port)]
                proc = Proc(argv, gw_env, cwd / "gateway.log")
                try:
                    wait_http(port, "/healthz", 600, proc.popen)
                    run_load("127.0.0.1", port, PATH, body, auth, concurrency=4, total=100)
                    _control("-i", "on", str(proc.pid), cwd=cwd)
                    res = run_load(
                        "127.0.0.1", port, PATH, body, auth, concurrency=c, total=args.requests
                    )
                    _control("-d", str(proc.pid), cwd=cwd)
                    _control("-i", "off", str(proc.pid), cwd=cwd)
                finally:
                    proc.stop()
                if res.errors:
                    print(f"{name} c={c}: {res.errors} errors", file=sys.stderr)
                results[name][c] = _total_ir(out) / max(1, len(res.latencies))
                print(f"{name} c={c}: {results[name][c]:,.0f} Ir/request", file=sys.stderr)
    finally:
        fake.stop()
        if schemas:
            import psycopg

            with psycopg.connect(args.pg, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"instructions per non-streaming request (callgrind), {args.requests} requests")
    for name, row in results.items():
        print(f"{name:12}" + "".join(f"  c={c}: {ir / 1e6:.3f} M" for c, ir in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
