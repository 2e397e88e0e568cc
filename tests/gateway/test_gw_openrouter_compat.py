"""OpenRouter compatibility: /api/v1 aliases, models/{id}, credits/key, attribution, model IDs."""

from __future__ import annotations

import httpx
import openai
import pytest
from _gwhelpers import Gateway, chat_body, ledger_state

from dexto.gateway.app import SERVED_ENDPOINTS

MODEL = "openai/gpt-4o-mini"


def test_openrouter_base_url_serves_every_v1_endpoint(gateway: Gateway) -> None:
    base = gateway.url + "/api/v1"
    with openai.OpenAI(base_url=base, api_key=gateway.key, max_retries=0) as client:
        chat = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
        resp = client.responses.create(model=MODEL, input="x")
        models = client.models.list()
        one = client.models.retrieve(MODEL)
    assert chat.choices[0].message.content and resp.output_text
    assert MODEL in {m.id for m in models.data} and one.id == MODEL
    with httpx.Client() as c:
        usage = c.get(base + "/me/usage", headers=gateway.auth())
        health = c.get(base + "/healthz")
    assert usage.status_code == 200 and len(usage.json()["recent"]) == 2
    assert health.json()["status"] == "ok"
    assert len(ledger_state(gateway.db_url, gateway.account_id).charges) == 2


def test_models_retrieve_and_unknown_model(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        model = client.models.retrieve("anthropic/claude-sonnet-4.5")
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("nobody/nothing")
    assert model.id == "anthropic/claude-sonnet-4.5" and model.owned_by == "anthropic"
    assert "GET /v1/models" in str(info.value)


def test_credits_and_key_follow_the_ledger(gateway: Gateway) -> None:
    with httpx.Client() as c:
        r = c.post(gateway.v1 + "/chat/completions", json=chat_body(), headers=gateway.auth())
        credits = c.get(gateway.url + "/api/v1/credits", headers=gateway.auth()).json()["data"]
        key = c.get(gateway.url + "/api/v1/key", headers=gateway.auth()).json()["data"]
        bad = [
            c.get(gateway.url + p, headers=gateway.auth("dxk_" + "0" * 40))
            for p in ("/api/v1/credits", "/api/v1/key")
        ]
    state = ledger_state(gateway.db_url, gateway.account_id)
    charged = float(r.headers["x-dexto-cost"])
    assert credits == {"total_credits": 1.0, "total_usage": charged}
    assert key["limit"] == 1.0 and key["usage"] == charged == key["usage_daily"]
    assert key["limit_remaining"] == state.balance / 1_000_000
    assert key["is_free_tier"] is False and key["label"].startswith("dxk_")
    assert gateway.key not in key["label"]
    assert [b.status_code for b in bad] == [401, 401]


def test_attribution_headers_are_forwarded(gateway: Gateway) -> None:
    sent = {
        "HTTP-Referer": "https://example.com/app",
        "X-Title": "Example",
        "X-OpenRouter-Title": "Example App",
        "X-OpenRouter-Categories": "cli-agent,cloud-agent",
    }
    with httpx.Client() as c:
        r = c.post(
            gateway.v1 + "/chat/completions",
            json=chat_body(),
            headers={**gateway.auth(), **sent},
        )
    assert r.status_code == 200 and gateway.fake is not None
    seen = gateway.fake.stats.last_seen
    assert {k: seen.get(k.lower()) for k in sent} == sent


@pytest.mark.parametrize(
    "model",
    ["openai/gpt-4o-mini\r\nX-Evil: 1", "openai/gpt 4o", "\x00", "a" * 201, "", " openai/x", 42],
)
def test_bad_model_ids_are_400_before_any_hold(gateway: Gateway, model: object) -> None:
    with httpx.Client() as c:
        r = c.post(
            gateway.v1 + "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "x"}]},
            headers=gateway.auth(),
        )
    assert r.status_code == 400 and "'model'" in r.json()["error"]["message"]
    assert gateway.fake is not None
    assert gateway.fake.stats.paths.get("/api/v1/chat/completions", 0) == 0
    assert ledger_state(gateway.db_url, gateway.account_id).charges == []


def test_unknown_path_names_the_served_endpoints(gateway: Gateway) -> None:
    with httpx.Client() as c:
        r = c.get(gateway.url + "/v1/embeddingz")
        alias = c.get(gateway.url + "/api/v1/nothing")
    assert r.status_code == 404 and alias.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "NOT_FOUND" and err["endpoints"] == list(SERVED_ENDPOINTS)
    assert "POST /v1/responses" in err["message"] and "/v1/embeddingz" in err["message"]
