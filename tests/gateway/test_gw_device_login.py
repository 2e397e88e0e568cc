"""Device login: code → approval page (email + scrypt password) → key, exactly once."""

from __future__ import annotations

import re
import time

import httpx
from _gwhelpers import Gateway, device_csrf, make_user, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.gateway.passwords import hash_password, verify_password


def _form(c: httpx.Client, **form: str) -> httpx.Response:
    """Post the approval form as a browser would: with the page's token and cookie."""
    return c.post("/device", data={**form, "csrf": device_csrf(c)})


def test_password_hashing() -> None:
    h = hash_password("correct horse")
    assert h.startswith("scrypt$16384$8$1$") and "correct" not in h
    assert verify_password("correct horse", h)
    assert not verify_password("wrong", h)
    assert not verify_password("x", None) and not verify_password("x", "garbage")


def test_device_flow(gateway: Gateway) -> None:
    account_id = make_user(gateway.db_url, "dev@example.com", "s3cret-pass")
    with httpx.Client(base_url=gateway.url) as c:
        code = c.post("/auth/device/code").json()
        assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code["user_code"])
        assert code["verification_uri"] == gateway.url + "/device"
        assert code["interval"] == 5 and code["expires_in"] == 900
        poll = c.post("/auth/device/token", json={"device_code": code["device_code"]})
        assert poll.status_code == 400
        assert poll.json()["error"]["code"] == "AUTHORIZATION_PENDING"

        page = c.get("/device", params={"user_code": code["user_code"]})
        assert page.status_code == 200 and code["user_code"] in page.text
        assert page.headers["x-frame-options"] == "DENY"
        bad = _form(
            c,
            **{
                "user_code": code["user_code"],
                "email": "dev@example.com",
                "password": "nope",
                "action": "approve",
            },
        )
        assert bad.status_code == 401 and "Wrong email or password" in bad.text
        ok = _form(
            c,
            **{
                "user_code": code["user_code"].lower().replace("-", ""),
                "email": "DEV@example.com",
                "password": "s3cret-pass",
                "action": "approve",
            },
        )
        assert ok.status_code == 200 and "Approved" in ok.text
        time.sleep(1.1)  # the poll interval guard (SLOW_DOWN) is 1 s
        got = c.post("/auth/device/token", data={"device_code": code["device_code"]})
        assert got.status_code == 200
        doc = got.json()
        assert doc["account"] == {"id": account_id, "email": "dev@example.com"}
        assert doc["apiKey"].startswith("dxk_")
        me = c.get("/me/usage", headers={"Authorization": f"Bearer {doc['apiKey']}"})
        assert me.json()["account"]["id"] == account_id
        again = c.post("/auth/device/token", json={"device_code": code["device_code"]})
        assert again.json()["error"]["code"] == "INVALID_GRANT"


def test_device_flow_lockout_and_deny(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> None:
    with start_gateway(sqlite_url, fake[1], login_backoff_s=1.0) as gateway:
        _lockout_and_deny(gateway)


def _lockout_and_deny(gateway: Gateway) -> None:
    make_user(gateway.db_url, "lock@example.com", "s3cret-pass")
    with httpx.Client(base_url=gateway.url) as c:
        code = c.post("/auth/device/code").json()
        for _ in range(4):
            r = _form(
                c,
                **{
                    "user_code": code["user_code"],
                    "email": "lock@example.com",
                    "password": "bad",
                },
            )
            assert r.status_code == 401
        r = _form(
            c, **{"user_code": code["user_code"], "email": "lock@example.com", "password": "bad"}
        )
        assert r.status_code == 403
        poll = c.post("/auth/device/token", json={"device_code": code["device_code"]})
        assert poll.json()["error"]["code"] == "ACCESS_DENIED"
        code2 = c.post("/auth/device/code").json()
        # Five failures blocked the account for login_backoff_s: wait it out.
        blocked = _form(c, user_code=code2["user_code"], email="lock@example.com", password="x")
        assert blocked.status_code == 429
        time.sleep(int(blocked.headers["retry-after"]))
        r = _form(
            c,
            **{
                "user_code": code2["user_code"],
                "email": "lock@example.com",
                "password": "s3cret-pass",
                "action": "deny",
            },
        )
        assert "Denied" in r.text
        poll = c.post("/auth/device/token", json={"device_code": code2["device_code"]})
        assert poll.json()["error"]["code"] == "ACCESS_DENIED"
        assert c.get("/device", params={"user_code": '"><script>'}).text.count("<script>") == 0
