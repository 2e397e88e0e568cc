"""The Vercel AI SDK's default ``openai(model)`` provider (the Responses API) in Node.

``tests/interop/node`` pins ``ai`` and ``@ai-sdk/openai`` (package.json + lockfile); ``.ci/run``
installs them with ``npm ci``. Without Node or the installed packages these tests skip, unless
``DEXTO_REQUIRE_SERVICES=1``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _gwhelpers import Gateway
from _interop import BAD_KEY, MODEL, WORDS, charged_usd, no_hold_left

NODE_DIR = Path(__file__).resolve().parent / "node"


def _problem() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (NODE_DIR / "node_modules" / "@ai-sdk" / "openai").is_dir():
        return f"npm packages not installed: run `npm ci` in {NODE_DIR}"
    return None


@pytest.fixture(autouse=True)
def _need_node() -> None:
    problem = _problem()
    if problem is None:
        return
    if os.environ.get("DEXTO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{problem} (DEXTO_REQUIRE_SERVICES=1)")
    pytest.skip(problem)


def run_node(gw: Gateway, mode: str, key: str | None = None) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEXTO_BASE_URL": gw.v1,
        "DEXTO_API_KEY": key or gw.key,
        "DEXTO_MODEL": MODEL,
    }
    out = subprocess.run(
        ["node", "run.mjs", mode],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_generate_text_usage_cost(gw: Gateway) -> None:
    doc = run_node(gw, "generate")
    assert doc["text"] == WORDS, doc
    assert doc["usage"]["outputTokens"] == 20
    headers = doc["headers"]
    assert float(headers["x-dexto-cost"]) == charged_usd(gw, headers["x-request-id"])


def test_stream_text_usage(gw: Gateway) -> None:
    doc = run_node(gw, "stream")
    assert doc["text"] == WORDS, doc
    assert doc["usage"]["outputTokens"] == 20
    charged = charged_usd(gw, doc["headers"]["x-request-id"])
    assert charged > 0 and no_hold_left(gw)


def test_typed_errors_401_402_429(gw: Gateway, broke: Gateway, limited: Gateway) -> None:
    for target, key, status in ((gw, BAD_KEY, 401), (broke, None, 402), (limited, None, 429)):
        for mode in ("generate", "stream"):
            err = run_node(target, mode, key).get("error")
            assert err is not None and err["name"] == "AI_APICallError", (mode, err)
            assert err["statusCode"] == status, (mode, err)
