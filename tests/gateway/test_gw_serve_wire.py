"""``dexto gateway serve`` on the wire: client addresses (X-Forwarded-For trusted only from
uvicorn's ``FORWARDED_ALLOW_IPS``, loopback by default) and whole answers on kept-alive
connections."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _gwhelpers import chat_body, make_account
from _gwproc import serve

from dexto.devtools.fake_upstream import FakeUpstream


def _codes(url: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as c:
        return [
            c.post("/auth/device/code", headers={"x-forwarded-for": xff}).status_code
            for xff in forwarded_for
        ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [200, 429, 200]),  # loopback is trusted: one limit per forwarded address
        ({"FORWARDED_ALLOW_IPS": "192.0.2.1"}, [200, 429, 429]),  # not trusted: the peer's
    ],
)
def test_forwarded_for_counts_only_from_trusted_peers(
    env: dict[str, str],
    expected: list[int],
    sqlite_url: str,
    fake: tuple[FakeUpstream, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with serve(sqlite_url, fake[1], tmp_path, DEXTO_GATEWAY_DEVICE_CODES_PER_MINUTE="1") as gw:
        got = _codes(gw.url, ["203.0.113.1", "203.0.113.1", "203.0.113.2"])
    assert got == expected


def test_answers_on_one_kept_alive_connection(
    sqlite_url: str, fake: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    _, key = make_account(sqlite_url, "wire@example.com", 10_000_000)
    with serve(sqlite_url, fake[1], tmp_path) as gw, httpx.Client(base_url=gw.url) as c:
        auth = {"authorization": f"Bearer {key}"}
        answers = [c.post("/v1/chat/completions", json=chat_body(), headers=auth) for _ in range(5)]
        missing = c.get("/v1/nothing-here")
    assert [a.status_code for a in answers] == [200] * 5
    assert all(len(a.content) == int(a.headers["content-length"]) for a in answers)
    assert all(a.json()["object"] == "chat.completion" for a in answers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
