"""The admin HTTP API: off without a token, 401 with a wrong one, and the full account cycle."""

from __future__ import annotations

import httpx
from _gwhelpers import chat_body, start_gateway

from dexto.devtools.fake_upstream import FakeUpstream


def test_admin_api(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> None:
    with start_gateway(sqlite_url, fake[1]) as off, httpx.Client(base_url=off.url) as c:
        assert c.get("/admin/accounts").status_code == 404
    from dexto._secret import Secret

    with start_gateway(
        sqlite_url, fake[1], email="other@example.com", admin_token=Secret("adm-token-123")
    ) as gw:
        with httpx.Client(base_url=gw.url) as c:
            assert (
                c.get("/admin/accounts", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
            h = {"Authorization": "Bearer adm-token-123"}
            made = c.post(
                "/admin/accounts", json={"email": "new@example.com", "credits": "1.5"}, headers=h
            ).json()
            acct = made["account"]["id"]
            assert made["apiKey"].startswith("dxk_")
            bad = c.post(f"/admin/accounts/{acct}/credits", json={"usd": "-3"}, headers=h)
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_CONFIG"
            top = c.post(f"/admin/accounts/{acct}/credits", json={"usd": "0.5"}, headers=h).json()
            assert top["balanceUsd"] == "2.000000"
            # A retried top-up with the same Idempotency-Key adds nothing more.
            once = {**h, "Idempotency-Key": "topup-7f3a"}
            url = f"/admin/accounts/{acct}/credits"
            first = c.post(url, json={"usd": "0.25"}, headers=once).json()
            again = c.post(url, json={"usd": "0.25"}, headers=once).json()
            assert (first["balanceUsd"], first["duplicate"]) == ("2.250000", False)
            assert (again["balanceUsd"], again["duplicate"]) == ("2.250000", True)
            assert again["reference"] == first["reference"]
            # ... and is refused for a different amount; a malformed key is refused too.
            other = c.post(url, json={"usd": "0.3"}, headers=once)
            assert other.status_code == 400 and "Idempotency-Key" in other.json()["error"]["fix"]
            badkey = c.post(url, json={"usd": "0.3"}, headers={**h, "Idempotency-Key": "a b"})
            assert badkey.status_code == 400
            balance = c.get("/admin/accounts", headers=h).json()["accounts"]
            assert {a["id"]: a["balanceUsd"] for a in balance}[acct] == "2.250000"
            key = c.post(f"/admin/accounts/{acct}/keys", json={"name": "k2"}, headers=h).json()
            keys = c.get(f"/admin/accounts/{acct}/keys", headers=h).json()["keys"]
            assert len(keys) == 2
            ok = c.post(
                "/v1/chat/completions",
                json=chat_body(),
                headers={"Authorization": f"Bearer {key['apiKey']}"},
            )
            assert ok.status_code == 200
            assert c.post(f"/admin/keys/{key['key']['id']}/revoke", headers=h).json()["revoked"]
            gone = c.post(
                "/v1/chat/completions",
                json=chat_body(),
                headers={"Authorization": f"Bearer {key['apiKey']}"},
            )
            assert gone.status_code == 401
            usage = c.get(f"/admin/accounts/{acct}/usage", headers=h).json()
            assert usage["mtd"]["requests"] == 1
            emails = {a["email"] for a in c.get("/admin/accounts", headers=h).json()["accounts"]}
            assert {"new@example.com", "other@example.com"} <= emails
