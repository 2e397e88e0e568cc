"""Upstream failures are counted in /metrics by their real class, not all as "connect"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _gwhelpers import chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream_server import free_port


def _kinds(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dexto_gateway_upstream_errors_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('kind="', 1)[1].split('"', 1)[0]] = float(value)
    return out


@pytest.mark.parametrize(
    ("fake_opts", "status", "kind"),
    [
        ({"hang_ms": 5000}, 504, "timeout"),
        ({"drop_after": 0}, 502, "read_closed"),
        ({"malformed": True}, 502, "malformed"),
        ({"status": 500}, 502, "http_500"),
    ],
)
def test_upstream_error_kinds(
    sqlite_url: str,
    fake: tuple[FakeUpstream, str],
    fake_opts: dict[str, Any],
    status: int,
    kind: str,
) -> None:
    with start_gateway(sqlite_url, fake[1], upstream_timeout_s=0.3) as gw:
        with httpx.Client(timeout=30) as c:
            r = c.post(
                gw.v1 + "/chat/completions", json=chat_body(fake=fake_opts), headers=gw.auth()
            )
            text = c.get(gw.url + "/metrics").text
    assert r.status_code == status
    assert _kinds(text) == {kind: 1.0}


def test_unreachable_upstream_is_a_connect_error(sqlite_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/v1"
    with start_gateway(sqlite_url, dead) as gw:
        with httpx.Client(timeout=30) as c:
            r = c.post(gw.v1 + "/chat/completions", json=chat_body(), headers=gw.auth())
            text = c.get(gw.url + "/metrics").text
    assert r.status_code == 502
    assert _kinds(text) == {"connect": 1.0}
