"""The marketplace cache: TTL, corrupt files, refresh from a real loopback server, never raising."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import (
    MarketplaceUnavailableError,
    load_marketplace,
    refresh_marketplace,
    write_cache,
)
from tests._http import ModelsServer as _Server
from tests._samples import SAMPLE_ROWS


def test_missing_cache_answers_from_the_bundled_snapshot(tmp_path: Path) -> None:
    cat = load_marketplace(DextoPaths(tmp_path))
    assert (cat.state, cat.source) == ("bundled", "bundled") and cat.snapshot_date
    assert cat.status("z-ai/glm-4.5-air") == "known"
    assert cat.status("nobody/nothing") == "unknown"
    bare = load_marketplace(DextoPaths(tmp_path), bundled=False)
    assert bare.state == "missing" and bare.status("z-ai/glm-4.5-air") == "unverified"


def test_cache_fresh_or_stale_wins_over_the_bundled_snapshot(tmp_path: Path) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS[:2])
    fetched = json.loads(paths.marketplace_cache.read_text())["fetchedAt"]
    for now in (fetched + 1, fetched + 10**6):
        cat = load_marketplace(paths, now=now)
        assert cat.source == "cache" and len(cat.models) == 2


def test_refresh_writes_cache_and_answers_known_unknown(
    tmp_path: Path, models_server: _Server
) -> None:
    paths = DextoPaths(tmp_path)
    cat = refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": models_server.url})
    assert models_server.hits == 1 and cat.state == "fresh" and paths.marketplace_cache.exists()
    assert cat.status("z-ai/glm-4.5-air:free") == "known"
    assert cat.status("anthropic/claude-sonnet-4.5") == "known"
    assert cat.status("nobody/nothing") == "unknown"
    # a fresh cache is not fetched again
    refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": models_server.url})
    assert models_server.hits == 1


@pytest.mark.parametrize(
    "status,body",
    [(500, b"oops"), (200, b"{not json"), (200, b'{"data": []}'), (200, b'{"data": [{"x": 1}]}')],
)
def test_failing_refresh_keeps_old_cache(
    tmp_path: Path, models_server: _Server, status: int, body: bytes
) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS[:3])
    raw = json.loads(paths.marketplace_cache.read_text())
    raw["fetchedAt"] = 0  # stale
    paths.marketplace_cache.write_text(json.dumps(raw))
    models_server.status, models_server.body = status, body
    cat = refresh_marketplace(paths, {"DEXTO_OPENROUTER_MODELS_URL": models_server.url})
    assert cat.state == "stale" and len(cat.models) == 3


def test_offline_refresh_never_raises_unless_strict(tmp_path: Path) -> None:
    env = {"DEXTO_OPENROUTER_MODELS_URL": "http://127.0.0.1:9/models"}
    cat = refresh_marketplace(DextoPaths(tmp_path), env, timeout=0.5)
    assert cat.source == "bundled"
    with pytest.raises(MarketplaceUnavailableError) as e:
        refresh_marketplace(DextoPaths(tmp_path), env, timeout=0.5, force=True, strict=True)
    assert "unreachable" in e.value.message and e.value.fix


def test_a_failed_refresh_backs_off_per_url(tmp_path: Path, models_server: _Server) -> None:
    paths = DextoPaths(tmp_path)
    models_server.status = 500
    env = {"DEXTO_OPENROUTER_MODELS_URL": models_server.url}
    refresh_marketplace(paths, env)
    refresh_marketplace(paths, env)
    assert models_server.hits == 1
    models_server.status = 200
    assert (
        refresh_marketplace(
            paths, {"DEXTO_OPENROUTER_MODELS_URL": models_server.url + "?v=2"}
        ).source
        == "live"
    )
    assert models_server.hits == 2
    raw = json.loads(paths.marketplace_cache.read_text())
    raw["fetchedAt"] = 0
    paths.marketplace_cache.write_text(json.dumps(raw))
    assert refresh_marketplace(paths, env).source == "live"  # success cleared the record
    assert models_server.hits == 3


def test_ttl_and_corrupt_cache(tmp_path: Path) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS)
    fetched = json.loads(paths.marketplace_cache.read_text())["fetchedAt"]
    assert load_marketplace(paths, now=fetched + 10).state == "fresh"
    assert load_marketplace(paths, now=fetched + 7200).state == "stale"
    paths.marketplace_cache.write_text("{corrupt")
    assert load_marketplace(paths).source == "bundled"
    assert paths.marketplace_cache.read_text() == "{corrupt"


def test_prices_are_per_million(tmp_path: Path) -> None:
    paths = DextoPaths(tmp_path)
    write_cache(paths, SAMPLE_ROWS)
    m = load_marketplace(paths).get("anthropic/claude-sonnet-4.5")
    assert m is not None and (m.input_per_m, m.output_per_m) == (3.0, 15.0)


def test_a_failed_refresh_logs_and_records_the_url_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = "http://u:mkSECRETpw@127.0.0.1:9/api/v1/models?api_key=mkSECRETpw"
    env = {"DEXTO_OPENROUTER_MODELS_URL": url}
    with caplog.at_level(logging.INFO, logger="dexto.marketplace"):
        refresh_marketplace(DextoPaths(tmp_path), env, timeout=0.5, force=True)
    assert "mkSECRETpw" not in caplog.text
    assert "http://u:***@127.0.0.1:9/api/v1/models?api_key=***" in caplog.text
