"""A request still waiting for its upstream keeps its hold: the lease is extended while it runs,
so a sweeper does not release it at ``HOLD_TTL_S`` and the money stays held until it settles."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from _gwhelpers import chat_body, ledger_state, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from tests.gateway.test_gw_crash_recovery import _rows


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_request_slower_than_the_hold_ttl_keeps_its_hold_until_it_settles(
    backend: str,
    stream: bool,
    request: pytest.FixtureRequest,
    sqlite_url: str,
    fake: tuple[FakeUpstream, str],
) -> None:
    """The upstream answers (or sends its first chunk) 3 s after the request, the hold's TTL is
    1 s and the sweeper runs every 0.2 s: the hold is still there after 2 s, nothing is released
    or swept, and the request is charged exactly its usage cost."""
    db_url = sqlite_url if backend == "sqlite" else request.getfixturevalue("pg_url")
    email = f"lease-{time.monotonic_ns()}@example.com"
    with start_gateway(db_url, fake[1], email=email, hold_ttl_s=1, sweep_interval_s=0.2) as gw:
        body = chat_body(model="fake/cheap", stream=stream)
        body["fake"] = {"latency_ms": 3000}
        if stream:
            body["stream_options"] = {"include_usage": True}
        out: dict[str, Any] = {}

        def call() -> None:
            with httpx.Client(timeout=30) as c:
                r = c.post(
                    gw.url + "/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {gw.key}"},
                )
            out.update(status=r.status_code, rid=r.headers["x-request-id"], text=r.text)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        time.sleep(2.0)  # the hold's first TTL passed, several sweeps ran
        held = _rows(db_url, "SELECT COUNT(*) FROM holds WHERE account_id = ?", (gw.account_id,))
        caller.join(30)
    assert held == [(1,)]
    assert out["status"] == 200
    if stream:
        usage = [json.loads(e[5:]) for e in out["text"].split("\n\n") if '"usage"' in e and e[5:]]
        cost = usage[-1]["usage"]["cost"]
    else:
        cost = json.loads(out["text"])["usage"]["cost"]
    state = ledger_state(db_url, gw.account_id)
    assert state.holds == 0 and state.balance == state.ledger_sum
    assert [(c[0], -c[1], c[3]) for c in state.charges] == [
        (out["rid"], round(cost * 1_000_000), 0)
    ]
    swept = _rows(db_url, "SELECT action FROM swept_holds WHERE request_id = ?", (out["rid"],))
    assert swept == []
