"""Logs never contain prompts, completions or keys; /metrics, /healthz and /me/usage shapes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _gwhelpers import UPSTREAM_KEY, Gateway, chat_body

from dexto.gateway.logs import JsonFormatter

PROMPT = "MY-SECRET-PROMPT-TEXT-42"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [
        logging.getLogger(n)
        for n in ("", "dexto", "dexto.gateway", "uvicorn", "uvicorn.error", "httpx", "httpcore")
    ]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, level in zip(loggers, old, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def _chat_events(captured: _Capture) -> list[dict[str, object]]:
    return [json.loads(line) for line in list(captured.lines) if '"chat.completions"' in line]


def test_logs_hold_no_prompt_completion_or_key(gateway: Gateway, captured: _Capture) -> None:
    body = chat_body(messages=[{"role": "user", "content": PROMPT}])
    with httpx.Client(timeout=30) as c:
        url = gateway.v1 + "/chat/completions"
        ok = c.post(url, json=body, headers=gateway.auth())
        completion = ok.json()["choices"][0]["message"]["content"]
        c.post(url, json={**body, "stream": True}, headers=gateway.auth())
        c.post(url, json={**body, "fake": {"status": 500}}, headers=gateway.auth())
        c.post(
            url, json={**body, "fake": {"drop_after": 2}, "stream": True}, headers=gateway.auth()
        )
        c.post(url, json=body, headers={"Authorization": "Bearer dxk_" + "Z" * 40})
        c.post(
            url,
            content=b"{" + PROMPT.encode(),
            headers={"Content-Type": "application/json", **gateway.auth()},
        )
    # The access line is written after the answer is sent: wait for the sixth.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_chat_events(captured)) < 6:
        time.sleep(0.01)
    text = "\n".join(captured.lines)
    events = _chat_events(captured)
    assert len(events) >= 6
    assert {e["status"] for e in events} >= {200, 401, 400, 502}
    for needle in (
        PROMPT,
        completion.strip(),
        gateway.key,
        gateway.key[4:],
        UPSTREAM_KEY,
        "Bearer",
    ):
        assert needle not in text, needle
    logged = events[0]
    assert {"request_id", "account", "model", "status", "latency_ms"} <= set(logged)


def test_metrics_health_usage(gateway: Gateway) -> None:
    with httpx.Client() as c:
        c.post(gateway.v1 + "/chat/completions", json=chat_body(), headers=gateway.auth())
        c.post(
            gateway.v1 + "/chat/completions",
            json=chat_body(fake={"status": 500}),
            headers=gateway.auth(),
        )
        text = c.get(gateway.url + "/metrics").text
        health = c.get(gateway.url + "/healthz").json()
        usage = c.get(gateway.url + "/me/usage", headers=gateway.auth()).json()
        unauth = c.get(gateway.url + "/me/usage")
    assert 'dexto_gateway_requests_total{route="chat_completions",status="200"} 1.0' in text
    assert 'dexto_gateway_requests_total{route="chat_completions",status="502"} 1.0' in text
    assert 'dexto_gateway_upstream_errors_total{kind="http_500"} 1.0' in text
    assert "dexto_gateway_request_duration_seconds_bucket" in text
    assert "dexto_gateway_holds_active 0" in text
    assert "dexto_gateway_ledger_credited_micros 1000000" in text
    assert "dexto_gateway_holds_placed_total 2.0" in text
    assert health["status"] == "ok" and health["db"] == "sqlite"
    assert set(usage) == {"account", "balanceUsd", "mtd", "recent"}
    assert usage["mtd"]["requests"] == 1
    assert set(usage["recent"][0]) == {
        "ts",
        "requestId",
        "model",
        "costUsd",
        "promptTokens",
        "completionTokens",
        "sessionId",
        "source",
    }
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "INVALID_API_KEY"


def test_metrics_count_every_route_by_status(gateway: Gateway) -> None:
    with httpx.Client() as c:
        assert c.get(gateway.url + "/healthz").status_code == 200
        assert c.get(gateway.url + "/no/such/path").status_code == 404
        assert c.get(gateway.url + "/me/usage").status_code == 401
        text = c.get(gateway.url + "/metrics").text
    assert 'dexto_gateway_requests_total{route="/healthz",status="200"} 1.0' in text
    assert 'dexto_gateway_requests_total{route="other",status="404"} 1.0' in text
    assert 'dexto_gateway_requests_total{route="/me/usage",status="401"} 1.0' in text
    assert 'dexto_gateway_request_duration_seconds_count{route="/healthz"} 1.0' in text


def test_metrics_counter_api() -> None:
    from dexto.gateway.metrics import Metrics

    m = Metrics()
    m.inc("holds_placed_total")
    m.inc("holds_placed_total", 2)
    m.inc("ratelimit_bypassed_total", reason="timeout")
    m.inc("brand_new_total", kind="x")  # not in COUNTERS yet: registered on first use
    text = m.render({"holds_active": 4})
    assert "dexto_gateway_holds_placed_total 3.0" in text
    assert 'dexto_gateway_ratelimit_bypassed_total{reason="timeout"} 1.0' in text
    assert 'dexto_gateway_brand_new_total{kind="x"} 1.0' in text
    assert "dexto_gateway_holds_active 4" in text
    assert "dexto_gateway_rate_limited_total 0.0" in text  # every listed counter, even at 0


_DRIVE = """
import json
from dexto.gateway.metrics import Metrics
m = Metrics()
for seconds in (0.0005, 0.001, 0.0011, 0.3, 29.0, 30.0, 31.0, 0.012):
    m.request("chat_completions", 200, seconds)
m.request("responses", 402, 0.002)
m.inc("holds_placed_total")
m.inc("holds_settled_total", 3)
m.upstream_error("timeout")
m.upstream_error("timeout")
m.inc("ratelimit_bypassed_total", reason="redis_down")
lines = [x for x in m.render(None).splitlines() if x and not x.startswith("#")]
print(json.dumps({"local": m.local, "samples": sorted(lines)}))
"""


def test_one_process_counts_render_as_prometheus_client_objects(tmp_path: Path) -> None:
    """The single-process counters (plain integers, a collector at scrape time) print the same
    samples as prometheus_client's own objects (multiprocess mode) for the same calls."""
    from dexto.gateway.metrics import MULTIPROC_ENV

    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    runs = []
    for extra in ({}, {MULTIPROC_ENV: str(tmp_path)}):
        out = subprocess.run(
            [sys.executable, "-c", _DRIVE],
            env={**env, **extra},
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout))
    local, shared = runs
    assert (local["local"], shared["local"]) == (True, False)
    assert len(local["samples"]) > 30
    assert local["samples"] == shared["samples"]
