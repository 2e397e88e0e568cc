"""Schemathesis against a real ``dexto serve``: every answer must match ``/openapi.json``
(statuses, error bodies, enums, SSE events, ``Allow`` headers) with zero failures.

Bounded: a fixed seed and a small example budget per operation. The server's outbound traffic
goes to a dead proxy (127.0.0.1:9), so a fuzzed key + chat never leaves the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import StartServer

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
_DEAD = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
}
# both spellings: the lower-case one wins where both are set
DEAD_PROXY = {**_DEAD, **{k.lower(): v for k, v in _DEAD.items()}}


def _run(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    cmd = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        "2026",
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--output-truncate",
        "true",
        *extra,
    ]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


def test_schemathesis_finds_no_failures(serve: StartServer, tmp_path: Path) -> None:
    s = serve(DEAD_PROXY)
    out = _run(s.url, tmp_path, "--max-examples", "20")
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    assert "No issues found" in out.stdout or " passed" in out.stdout


def test_schemathesis_with_a_token(serve: StartServer, tmp_path: Path) -> None:
    token = "fuzz-token-0123456789"
    s = serve(DEAD_PROXY, token=token)
    doc = s.get("/openapi.json").json()
    assert doc["security"] == [{"bearer": []}]
    out = _run(
        s.url,
        tmp_path,
        "--max-examples",
        "8",
        "--phases",
        "fuzzing,stateful",
        "-H",
        f"Authorization: Bearer {token}",
    )
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
