"""/metrics adds up across worker processes (prometheus_client multiprocess mode).

A real ``dexto gateway serve --workers 2`` on PostgreSQL; requests on fresh connections until
both workers have answered some; then every scrape, whichever worker answers it, shows the sum.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from _gwhelpers import chat_body, make_account
from _gwproc import serve
from prometheus_client.mmap_dict import MmapedDict

from dexto.devtools.fake_upstream import FakeUpstream

CHAT_OK = 'dexto_gateway_requests_total{route="chat_completions",status="200"}'


def _chat_counts_by_pid(directory: Path) -> Counter[str]:
    """Chat 200s per worker, read from each worker's own counter file."""
    counts: Counter[str] = Counter()
    for path in directory.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _help = json.loads(key)
            if name.endswith("requests_total") and labels == {
                "route": "chat_completions",
                "status": "200",
            }:
                counts[pid] += int(value)
    return counts


async def _fire(url: str, key: str, n: int) -> list[int]:
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
    async with httpx.AsyncClient(limits=limits, timeout=30) as c:
        rs = await asyncio.gather(
            *(
                c.post(
                    url + "/v1/chat/completions",
                    json=chat_body(),
                    headers={"Authorization": f"Bearer {key}"},
                )
                for _ in range(n)
            )
        )
    return [r.status_code for r in rs]


@pytest.mark.slow
@pytest.mark.postgres
def test_metrics_sum_both_workers(
    pg_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    _, key = make_account(pg_url, "metrics@example.com", 100_000_000)
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_999999.db").write_bytes(b"stale junk")  # removed at start, else unreadable
    with serve(
        pg_url,
        fake[1],
        tmp_path,
        args=("--workers", "2"),
        DEXTO_GATEWAY_DB_POOL_SIZE="2",
        PROMETHEUS_MULTIPROC_DIR=str(prom),
    ) as gw:
        sent = 0
        for _ in range(30):  # bounded: until both workers answered some
            statuses = asyncio.run(_fire(gw.url, key, 12))
            assert statuses == [200] * 12
            sent += 12
            per_pid = _chat_counts_by_pid(prom)
            if sum(1 for n in per_pid.values() if n > 0) >= 2:
                break
        assert sum(1 for n in per_pid.values() if n > 0) >= 2, per_pid
        assert sum(per_pid.values()) == sent
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(limits=limits) as c:
            for _ in range(100):  # bounded: the workers' reservations end at their age (1 s)
                if "dexto_gateway_holds_active 0" in c.get(gw.url + "/metrics").text:
                    break
                time.sleep(0.1)
            scrapes = [c.get(gw.url + "/metrics").text for _ in range(8)]
    assert gw.proc.returncode == 0, gw.log_path.read_text()
    for text in scrapes:
        assert f"{CHAT_OK} {float(sent)}" in text
        assert f"dexto_gateway_holds_placed_total {float(sent)}" in text
        assert f"dexto_gateway_holds_settled_total {float(sent)}" in text
        assert (
            f'dexto_gateway_request_duration_seconds_count{{route="chat_completions"}} '
            f"{float(sent)}" in text
        )
        assert "dexto_gateway_holds_active 0" in text
    assert not (prom / "counter_999999.db").exists()


def test_runner_multiprocess_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dexto.gateway.metrics import MULTIPROC_ENV, multiprocess_dir

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert multiprocess_dir(1) is None and MULTIPROC_ENV not in os.environ
    cleanup = multiprocess_dir(2)
    assert cleanup is not None
    created = Path(os.environ[MULTIPROC_ENV])
    assert created.is_dir() and not any(created.iterdir())
    cleanup()
    assert not created.exists() and MULTIPROC_ENV not in os.environ
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert multiprocess_dir(1) is None  # the operator's directory: emptied, never removed
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
