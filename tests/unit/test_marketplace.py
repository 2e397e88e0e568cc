"""The marketplace cache: TTL, corrupt files, refresh from a real loopback server, never raising."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import load_marketplace, refresh_marketplace, write_cache
from tests._samples import SAMPLE_ROWS


class _Server:
    def __init__(self) -> None:
        self.body: bytes = json.dumps({"data": SAMPLE_ROWS}).encode()
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/models"


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    t = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    t.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    t.join()


def test_missing_cache_is_unverified(tmp_path: Path) -> None:
    cat = load_marketplace(DextoPaths(tmp_path))
    assert cat.state == "missing" and cat.status("z-ai/glm-4.5-air") == "unverified"


def test_refresh_writes_cache_and_answers_known_unknown(tmp_path: Path, server: _Server) -> None:
    paths = DextoPaths(tmp_path)
    cat = refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": server.url})
    assert server.hits == 1 and cat.state == "fresh" and paths.marketplace_cache.exists()
    assert cat.status("z-ai/glm-4.5-air:free") == "known"
    assert cat.status("anthropic/claude-sonnet-4.5") == "known"
    assert cat.status("nobody/nothing") == "unknown"
    # a fresh cache is not fetched again
    refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": server.url})
    assert server.hits == 1


@pytest.mark.parametrize("status,body", [(500, b"oops"), (200, b"{not json"),
                                         (200, b'{"data": []}'), (200, b'{"data": [{"x": 1}]}')])
def test_failing_refresh_keeps_old_cache(tmp_path: Path, server: _Server, status: int,
                                         body: bytes) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS[:3])
    raw = json.loads(paths.marketplace_cache.read_text())
    raw["fetchedAt"] = 0  # stale
    paths.marketplace_cache.write_text(json.dumps(raw))
    server.status, server.body = status, body
    cat = refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": server.url})
    assert cat.state == "stale" and len(cat.models) == 3


def test_offline_refresh_never_raises(tmp_path: Path) -> None:
    cat = refresh_marketplace(DextoPaths(tmp_path),
                              {"DEXTO_OPENROUTER_MODELS_URL": "http://127.0.0.1:9/models"},
                              timeout=0.5)
    assert cat.state == "missing"


def test_ttl_and_corrupt_cache(tmp_path: Path) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS)
    fetched = json.loads(paths.marketplace_cache.read_text())["fetchedAt"]
    assert load_marketplace(paths, now=fetched + 10).state == "fresh"
    assert load_marketplace(paths, now=fetched + 7200).state == "stale"
    paths.marketplace_cache.write_text("{corrupt")
    assert load_marketplace(paths).state == "missing"
    assert paths.marketplace_cache.read_text() == "{corrupt"


def test_prices_are_per_million(tmp_path: Path) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS)
    m = load_marketplace(paths).get("anthropic/claude-sonnet-4.5")
    assert m is not None and (m.input_per_m, m.output_per_m) == (3.0, 15.0)
