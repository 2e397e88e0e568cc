"""Bad upstream numbers, dynamic prices, answers without usage, the usage chunk, cost rewrite."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _gwhelpers import Gateway, start_gateway
from _scripted import ScriptedUpstream

from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway.db import Database
from dexto.gateway.logs import JsonFormatter
from dexto.gateway.pricing import ModelPrice, cost_from_usage, parse_price

P = ModelPrice(prompt=Decimal("0.000001"), completion=Decimal("0.000002"))


@pytest.mark.parametrize(
    ("cost", "expected", "bad"),
    [
        (0.0000123, 13, False),
        ("0.000005", 5, False),
        (0, 0, False),
        (float("inf"), 20, True),
        (float("nan"), 20, True),
        (-1, 20, True),
        (-0.000001, 20, True),
        ("abc", 20, True),
        ("", 20, True),
        (1e300, 20, True),
        ("1e400", 20, True),
        (True, 20, True),
        ([1], 20, True),
        (None, 20, False),  # absent cost: tokens at list price, exact (as before)
    ],
)
def test_cost_from_usage_table(cost: Any, expected: int, bad: bool) -> None:
    uc = cost_from_usage({"prompt_tokens": 10, "completion_tokens": 5, "cost": cost}, P)
    assert (uc.cost, uc.bad_cost, uc.prompt_tokens, uc.completion_tokens) == (
        expected,
        bad,
        10,
        5,
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": -5, "completion_tokens": 5}, (10, None, 5)),
        ({"prompt_tokens": 10**12, "completion_tokens": 5}, (10, None, 5)),
        ({"prompt_tokens": "7", "completion_tokens": 1.5}, (None, None, None)),
        ({}, (None, None, None)),
        ("usage", (None, None, None)),
    ],
)
def test_bad_token_counts_are_ignored(usage: Any, expected: tuple[Any, ...]) -> None:
    uc = cost_from_usage(usage, P)
    assert (uc.cost, uc.prompt_tokens, uc.completion_tokens) == expected


@pytest.mark.parametrize(
    ("pricing", "priced"),
    [
        ({"prompt": "0.000001", "completion": "0.000002"}, True),
        ({"prompt": "0", "completion": "0"}, True),
        ({"prompt": "-1", "completion": "-1"}, False),  # dynamic (openrouter/auto)
        ({"prompt": "0.000001", "completion": "-1"}, False),
        ({"prompt": "0.000001", "completion": "0.000002", "request": "-1"}, False),
        ({"prompt": "0.000001", "completion": "0.000002", "image": "-1"}, False),
        ({"prompt": "abc", "completion": "0"}, False),
        ({"prompt": "Infinity", "completion": "0"}, False),
        ({"prompt": "0.000001"}, False),
    ],
)
def test_parse_price_dynamic_and_garbage_mean_unknown(
    pricing: dict[str, str], priced: bool
) -> None:
    assert (parse_price({"id": "m", "pricing": pricing}) is not None) == priced


@pytest.fixture
def scripted(tmp_path: Any) -> Iterator[tuple[Gateway, ScriptedUpstream]]:
    up = ScriptedUpstream()
    with ServerThread(up) as srv:
        db = f"sqlite:///{tmp_path / 'gw.db'}"
        with start_gateway(db, srv.url + "/api/v1", credits_micros=1_000_000) as gw:
            yield gw, up


def _post(gw: Gateway, doc: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    raw = json.dumps(doc).encode()
    headers = {**gw.auth(), "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as c:
        return c.post(gw.v1 + "/chat/completions", content=raw, headers=headers), raw


def _charge(gw: Gateway, request_id: str) -> tuple[int, int, str | None]:
    db = Database(gw.db_url)
    conn = db.connect()
    try:
        with conn.read():
            row = conn.one(
                "SELECT amount_micros, estimated, estimate_reason FROM ledger WHERE request_id = ?",
                (request_id,),
            )
    finally:
        db.close_all()
    assert row is not None, f"no ledger row for {request_id}"
    return -int(row[0]), int(row[1]), row[2]


def _answer(usage: str | None, content: str = "hello world") -> str:
    doc = (
        '{"id":"gen-1","object":"chat.completion","model":"fake/cheap","choices":[{"index":0,'
        f'"message":{{"role":"assistant","content":{json.dumps(content)}}},'
        '"finish_reason":"stop"}]'
    )
    return doc + (f',"usage":{usage}}}' if usage is not None else "}")


@pytest.mark.parametrize(
    "cost", ["Infinity", "-Infinity", "NaN", "-1", '"abc"', "1e300", '"1e400"', "true"]
)
def test_bad_upstream_cost_is_billed_by_tokens_estimated(
    scripted: tuple[Gateway, ScriptedUpstream], cost: str
) -> None:
    gw, _ = scripted
    usage = f'{{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"cost":{cost}}}'
    doc = {"model": "fake/cheap", "messages": [{"role": "user", "content": "hi"}]}
    lines: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter())
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logging.getLogger("dexto.gateway").addHandler(handler)
    try:
        r, _ = _post(gw, {**doc, "script": {"raw": _answer(usage)}})
    finally:
        logging.getLogger("dexto.gateway").removeHandler(handler)
    assert r.status_code == 200
    bad = [json.loads(x) for x in lines if "upstream reported a bad cost" in x]
    assert len(bad) == 1 and bad[0]["error"].startswith("usage.cost=")
    assert bad[0]["request_id"] == r.headers["x-request-id"]
    assert _charge(gw, r.headers["x-request-id"]) == (20, 1, "bad_cost")
    assert r.headers["x-dexto-cost"] == "0.000020"
    assert r.json()["usage"]["cost"] == 0.00002
    with httpx.Client() as c:
        metrics = c.get(gw.url + "/metrics").text
    assert "dexto_gateway_upstream_bad_cost_total 1" in metrics


def test_good_cost_is_exact_and_the_body_shows_the_charge(
    scripted: tuple[Gateway, ScriptedUpstream],
) -> None:
    gw, _ = scripted
    usage = '{"prompt_tokens":10,"completion_tokens":5,"cost":4.8e-06}'
    doc = {"model": "fake/cheap", "messages": [{"role": "user", "content": "hi"}]}
    r, _ = _post(gw, {**doc, "script": {"raw": _answer(usage)}})
    assert _charge(gw, r.headers["x-request-id"]) == (5, 0, None)
    body = r.json()
    assert r.headers["x-dexto-cost"] == "0.000005"
    assert body["usage"]["cost"] == 0.000005 and body["usage"]["dexto_upstream_cost"] == 4.8e-06


@pytest.mark.parametrize("content", ["hello world, this is a test", "你好世界", ""])
def test_answer_without_usage_is_billed_by_delivered_tokens(
    scripted: tuple[Gateway, ScriptedUpstream], content: str
) -> None:
    gw, _ = scripted
    doc = {"model": "fake/cheap", "messages": [{"role": "user", "content": "hi"}]}
    doc["script"] = {"raw": _answer(None, content)}
    r, raw = _post(gw, doc)
    assert r.status_code == 200
    ascii_n = len(content.encode("ascii", "ignore"))
    tokens = math.ceil(ascii_n / 4) + (len(content) - ascii_n)
    expected = math.ceil(len(raw) / 4) * 1 + tokens * 2
    amount, estimated, reason = _charge(gw, r.headers["x-request-id"])
    assert (amount, estimated, reason) == (expected, 1, "no_usage")
    hold = len(raw) * 1 + 1000 * 2
    assert amount < hold // 10  # not the whole hold (the old behaviour)


def test_dynamic_price_model_holds_the_unknown_model_allowance(tmp_path: Any) -> None:
    up = ScriptedUpstream()
    with ServerThread(up) as srv:
        db = f"sqlite:///{tmp_path / 'gw.db'}"
        # 40,000 µUSD covers any fake/cheap hold here but not the 50,000 unknown-model hold.
        with start_gateway(db, srv.url + "/api/v1", credits_micros=40_000) as gw:
            msg = [{"role": "user", "content": "hi"}]
            ok, _ = _post(gw, {"model": "fake/cheap", "messages": msg, "script": {"raw": "{}"}})
            assert ok.status_code == 200
            r, _ = _post(gw, {"model": "openrouter/auto", "messages": msg})
            assert r.status_code == 402
            assert "$0.05 available" in r.json()["error"]["message"]
