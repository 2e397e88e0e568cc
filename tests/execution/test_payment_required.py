"""A 402 (SPEC §7): the gateway's INSUFFICIENT_CREDITS is the credits error; any other 402 — a
direct provider's account without credit or billing (OpenRouter answers 402 when the account or
key has insufficient credits), or the gateway with another code — is an UpstreamError whose fix
names the account to pay and the credential, never "check the model ID"."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from dexto.errors import DextoError, InsufficientCreditsError, UpstreamError
from dexto.llm.execution import open_model

DXK = "dxk_unit_secret_key_payment"
OR_KEY = "sk-or-user-secret-paym"
ANT_KEY = "sk-ant-user-secret-paym"
SONNET = "anthropic/claude-sonnet-4-5-20250929"
OR_MODEL = "openrouter/z-ai/glm-4.5-air:free"

OPENROUTER_402 = {
    "error": {
        "code": 402,
        "message": "Insufficient credits. Add more using https://openrouter.ai/credits",
    }
}
ANTHROPIC_402 = {
    "type": "error",
    "error": {"type": "billing_error", "message": "Your credit balance is too low."},
}
GATEWAY_OTHER_402 = {
    "error": {"code": "PAYMENT_METHOD_REQUIRED", "message": "The account has no payment method."}
}
GATEWAY_CREDITS_402 = {
    "error": {
        "code": "INSUFFICIENT_CREDITS",
        "message": "Insufficient Dexto credits. Balance: $0.00. Top up.",
    }
}
GATEWAY = {"DEXTO_API_KEY": DXK, "DEXTO_GATEWAY_URL": "http://gw.test"}

# (case, selection, env, status, body, error class, route, message contains, fix contains,
#  fix must not contain)
TABLE: list[tuple[Any, ...]] = [
    (
        "direct OpenRouter account without credit",
        OR_MODEL,
        {"OPENROUTER_API_KEY": OR_KEY},
        402,
        OPENROUTER_402,
        UpstreamError,
        "direct",
        ["OpenRouter answered HTTP 402 Payment Required: Insufficient credits"],
        [
            "add credits or set up billing in your OpenRouter account",
            "the key from env:OPENROUTER_API_KEY",
            "spending limit",
        ],
        ["model ID", "Dexto"],
    ),
    (
        "direct Anthropic billing error",
        SONNET,
        {"ANTHROPIC_API_KEY": ANT_KEY},
        402,
        ANTHROPIC_402,
        UpstreamError,
        "direct",
        ["Anthropic answered HTTP 402 Payment Required (billing_error): Your credit balance"],
        ["set up billing in your Anthropic account", "the key from env:ANTHROPIC_API_KEY"],
        ["model ID", "Dexto"],
    ),
    (
        "gateway 402 with another code, own key present: no fallback",
        SONNET,
        {**GATEWAY, "ANTHROPIC_API_KEY": ANT_KEY},
        402,
        GATEWAY_OTHER_402,
        UpstreamError,
        "dexto",
        [
            "the Dexto gateway answered HTTP 402 Payment Required (PAYMENT_METHOD_REQUIRED): "
            "The account has no payment method."
        ],
        ["the key from env:DEXTO_API_KEY", "`dexto billing status`", "top up your Dexto credits"],
        ["model ID", "ANTHROPIC_API_KEY"],
    ),
    (
        "gateway INSUFFICIENT_CREDITS without own key stays the credits error",
        SONNET,
        GATEWAY,
        402,
        GATEWAY_CREDITS_402,
        InsufficientCreditsError,
        "dexto",
        ["Insufficient Dexto credits"],
        ["top up your Dexto credits"],
        ["model ID"],
    ),
    (
        "a 400 still points at the model ID and parameters",
        OR_MODEL,
        {"OPENROUTER_API_KEY": OR_KEY},
        400,
        {"error": {"code": 400, "message": "bad parameter"}},
        UpstreamError,
        "direct",
        ["OpenRouter answered HTTP 400: bad parameter"],
        ["check the model ID 'z-ai/glm-4.5-air:free' and the request parameters"],
        ["billing"],
    ),
]


@pytest.mark.parametrize(
    "case,sel,extra,status,body,cls,route,said,wanted,unwanted",
    TABLE,
    ids=[t[0] for t in TABLE],
)
def test_a_402_names_the_account_to_pay(
    isolated_env: Path,
    case: str,
    sel: str,
    extra: dict[str, str],
    status: int,
    body: dict[str, Any],
    cls: type[DextoError],
    route: str,
    said: list[str],
    wanted: list[str],
    unwanted: list[str],
) -> None:
    hosts: list[str] = []

    def answer(req: httpx.Request) -> httpx.Response:
        hosts.append(req.url.host)
        return httpx.Response(status, json=body)

    env = dict(os.environ, DEXTO_HOME=str(isolated_env), **extra)
    with open_model(sel, env=env, transport=httpx.MockTransport(answer)) as model:
        assert model.decision.route == route
        with pytest.raises(DextoError) as info:
            model.complete("hi")
    err = info.value
    assert type(err) is cls
    assert len(hosts) == 1  # no second attempt on another route
    for words in said:
        assert words in err.message
    for words in wanted:
        assert words in err.fix
    for words in unwanted:
        assert words not in err.fix
    if isinstance(err, UpstreamError):
        assert err.status == status
        assert err.to_dict()["error"]["code"] == "UPSTREAM_ERROR"
    text = json.dumps(err.to_dict()) + str(err)
    assert DXK not in text and OR_KEY not in text and ANT_KEY not in text
