"""The hot path's shortcuts give exactly what the plain computations give: the integer reading
of ``usage.cost`` (against :class:`Decimal` at ample precision), the integer hold and estimate
maths (against :class:`Decimal`), and the usage spliced into the answer's bytes (against
``json.loads`` / ``json.dumps`` of the rewritten document)."""

from __future__ import annotations

import json
import math
from decimal import MIN_EMIN, ROUND_CEILING, Decimal, InvalidOperation, localcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dexto.gateway.pricing import (
    ModelPrice,
    RequestShape,
    cost_micros,
    estimate_tokens_cost,
    guard_estimate,
)
from dexto.gateway.splice import splice_usage
from dexto.gateway.stream import SseRelay, rewrite_usage


def reference_cost(value: Any) -> int | None:
    """The definition: Decimal of the text, finite and in [0, 1000], times 10**6, rounded up."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    with localcontext() as ctx:
        ctx.prec = 20_000
        ctx.Emin = MIN_EMIN
        try:
            d = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            return None
        if not (d.is_finite() and 0 <= d <= 1000):
            return None
        if d <= 0:
            return 0
        return int((d * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


COST_TABLE: list[tuple[Any, int | None]] = [
    (0, 0),
    (1, 1_000_000),
    (1000, 1_000_000_000),
    (1001, None),
    (-1, None),
    (0.0, 0),
    (-0.0, 0),
    (1.395e-05, 14),
    (1e-06, 1),
    (1e-07, 1),
    (5e-324, 1),
    (1000.0, 1_000_000_000),
    (1000.0000001, None),
    (float("inf"), None),
    (float("nan"), None),
    (True, None),
    (None, None),
    ([1], None),
    ("0.000005", 5),
    ("0.0000050000001", 6),
    ("0.0000010000000000000000000000000001", 2),  # past Decimal's default 28 digits
    ("1e3", 1_000_000_000),
    ("1E+3", 1_000_000_000),
    ("1e4", None),
    ("1000.000000", 1_000_000_000),
    ("1000.0000000001", None),
    ("999.9999991", 1_000_000_000),
    ("-0", 0),
    ("-0.0e5", 0),
    ("0e999999999999", 0),
    ("1e-999999999999", 1),
    ("1e999999999999", None),
    ("-1e-9", None),
    ("+5", 5_000_000),
    (".5", 500_000),
    ("5.", 5_000_000),
    (" 0.25 ", 250_000),
    ("\u20030.25\u2003", 250_000),
    ("1_0", 10_000_000),  # Decimal's own spellings keep working
    ("\u0661\u0662", 12_000_000),  # Arabic-Indic digits, as Decimal reads them
    (".", None),
    ("", None),
    ("e5", None),
    ("1e", None),
    ("0x10", None),
    ("1.2.3", None),
    ("Infinity", None),
    ("NaN", None),
    ("sNaN", None),
    ("0." + "0" * 5000 + "1", 1),
    ("0." + "1" * 6000, 111_112),
    ("1" * 5000, None),
]


@pytest.mark.parametrize(("value", "micros"), COST_TABLE)
def test_cost_micros_table(value: Any, micros: int | None) -> None:
    assert cost_micros(value) == micros
    assert reference_cost(value) == micros


_DECIMAL_TEXT = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-", "+"]),
    st.from_regex(r"[0-9]{0,12}", fullmatch=True),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,30}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][-+]?[0-9]{1,3}", fullmatch=True)),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _DECIMAL_TEXT,
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=0, max_value=1001),
        st.integers(min_value=-(10**6), max_value=10**6),
        st.text(max_size=12),
    )
)
@example("0.000000999999999999999999999999999999")
def test_cost_micros_matches_decimal(value: Any) -> None:
    assert cost_micros(value) == reference_cost(value)


_PRICE = st.one_of(
    st.just(Decimal(0)),
    st.decimals(min_value=0, max_value=Decimal("0.01"), places=12),
    st.decimals(min_value=0, max_value=Decimal(50), allow_nan=False, allow_infinity=False),
    st.from_regex(r"[0-9]\.[0-9]{0,3}[eE]-?[0-9]", fullmatch=True).map(Decimal),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    _PRICE,
    _PRICE,
    _PRICE,
    _PRICE,
    st.integers(0, 4 * 1024 * 1024),
    st.integers(1, 10**6),
    st.integers(1, 8),
    st.integers(0, 50),
    st.integers(0, 5),
    st.booleans(),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_integer_money_maths_match_decimal(
    p_req: Decimal,
    p_in: Decimal,
    p_out: Decimal,
    p_img: Decimal,
    body: int,
    max_tokens: int,
    n: int,
    images: int,
    files: int,
    tools: bool,
    pt: int,
    ct: int,
) -> None:
    price = ModelPrice(prompt=p_in, completion=p_out, request=p_req, image=p_img)
    shape = RequestShape(n=n, images=images, files=files, tools=tools)
    with localcontext() as ctx:
        ctx.prec = 1000

        def ceil(usd: Decimal) -> int:
            return max(0, int((usd * 1_000_000).to_integral_value(rounding=ROUND_CEILING)))

        prompt = body + (1_000 if tools else 0) + images * 4_000 + files * 20_000
        usd = n * p_req + prompt * p_in + n * max_tokens * p_out + (images + files) * p_img
        want_hold = max(1_000, ceil(usd), 1)
        want_cost = ceil(p_req + pt * p_in + ct * p_out)
    got = guard_estimate(
        body,
        max_tokens,
        price,
        min_hold=1_000,
        default_max_tokens=4096,
        unknown_model_hold=50_000,
        shape=shape,
    )
    assert got == want_hold
    assert estimate_tokens_cost(pt, ct, price) == want_cost


# -- the usage spliced into the answer --------------------------------------------------------

_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["usage", '"usage": {}', '{"usage":', ',"usage":{"cost":1}}', "\\", '"']),
)
_KEY = st.one_of(st.text(max_size=6), st.sampled_from(["usage", "cost", "choices", 'u"sage']))
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEY, inner, max_size=3)),
    max_leaves=8,
)
_USAGE = st.dictionaries(
    st.sampled_from(
        ["prompt_tokens", "completion_tokens", "cost", "dexto_upstream_cost", "usage", "x"]
    ),
    _VALUE,
    max_size=5,
)
_DUMPS = st.sampled_from(
    [
        {},
        {"separators": (",", ":")},
        {"indent": 2},
        {"ensure_ascii": False},
        {"indent": "\t", "ensure_ascii": False},
    ]
)


def _full_reencode(data: bytes, charged: int) -> Any:
    doc = json.loads(data)
    doc["usage"] = rewrite_usage(doc["usage"], charged)
    return json.loads(json.dumps(doc, ensure_ascii=False).encode("utf-8"))


def _check(data: bytes, charged: int) -> bytes | None:
    doc = json.loads(data)
    usage = doc["usage"]
    out = splice_usage(data, usage, charged)
    if out is not None:
        want = _full_reencode(data, charged)
        got = json.loads(out)
        assert got == want
        assert list(got) == list(want)  # the same members in the same order
        assert list(got["usage"]) == list(want["usage"])
    return out


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_KEY, _VALUE, max_size=5),
    _USAGE,
    st.integers(0, 10**9),
    _DUMPS,
    st.integers(0, 2),
)
def test_spliced_answer_equals_the_reencoded_one(
    rest: dict[str, Any], usage: dict[str, Any], charged: int, dumps: dict[str, Any], where: int
) -> None:
    rest.pop("usage", None)
    items = list(rest.items())
    pos = [len(items), 0, len(items) // 2][where]
    doc = dict([*items[:pos], ("usage", usage), *items[pos:]])
    try:
        data = json.dumps(doc, **dumps).encode("utf-8")
    except UnicodeEncodeError:
        assume(False)
        return
    out = _check(data, charged)
    region = json.dumps(usage, **dumps).encode("utf-8")
    if (
        pos == len(items)
        and data.count(b'"usage"') == 1
        and data.count(b'"cost"') == (1 if "cost" in usage else 0)
        and b"\\u" not in region
        and "dexto_upstream_cost" not in usage
        and not isinstance(usage.get("cost"), dict | list)
    ):
        assert out is not None  # the usual shape (usage last, mentioned once) is spliced


@pytest.mark.parametrize(
    ("text", "usage", "spliced"),
    [
        ('{"id":"a","usage":{"cost":1}}', None, True),
        ('{"id":"a","usage":{"cost":1},"x":2}', None, False),  # not last: re-encoded
        ('{"a":{"usage":{"cost":1}}}', {"cost": 1}, False),  # nested, equal to the usage
        ('{"a":{"b":1},"c":[{"usage":{"cost":1}}]}', {"cost": 1}, False),
        ('{"a":"x,\\"usage\\":{\\"cost\\":2}}","usage":{"cost":1}}', None, True),
        ('{"a":{"usage":{"cost":2}},"usage":{"cost":1}}', None, False),  # twice
        ('{"usage":{"cost":2},"\\u0075sage":{"cost":1}}', None, False),  # escaped key wins
        ('{"\\u0075sage":{"cost":2},"usage":{"cost":1}}', None, True),
        ('{"my\\"usage":{"cost":2},"usage2":1}', {"cost": 2}, False),
        ('{"usage" : \n {"cost" : 1 , "cost": 3}  \n }  \n', None, False),
        ('{"usage" : \n {"cost" : 1 , "x": [3]}  \n }  \n', None, True),
        ('{"usage":{"cost_details":{"cost":1}}}', None, False),
        ('{"usage":{"cost":"1e-6","n":{"a":"b"}}}', None, True),
        ('{"usage":{"cost":null}}', None, True),
        ('{"usage":{"cost":-Infinity}}', None, True),
        ('{"usage":{"cost":{"x":1}}}', None, False),
        ('{"usage":{"cost":NaN}}', None, True),
        ('{"usage":{"cost":1e400}}', None, True),
        ('{"usage":{"cost":"0.5","dexto_upstream_cost":7}}', None, False),
        ('{"usage":{"cost":1,"t":"\\ud800"}}', None, False),
        ('{"usage":{}}', None, True),
        ('["usage",{"usage":{}}]', {}, False),
    ],
)
def test_splice_edge_cases(text: str, usage: dict[str, Any] | None, spliced: bool) -> None:
    data = text.encode()
    doc = json.loads(data)
    if usage is None:
        usage = doc["usage"]
    rewritten = rewrite_usage(usage, 123)
    out = splice_usage(data, usage, 123)
    assert (out is not None) == spliced
    if out is not None:
        doc["usage"] = rewritten
        want = json.loads(json.dumps(doc))  # what the full re-encode gives a client
        got = json.loads(out)
        assert repr(got) == repr(want)  # (NaN never equals itself; its repr does)
        assert math.isclose(got["usage"]["cost"], 0.000123)


def test_splice_keeps_the_rest_byte_for_byte() -> None:
    data = b'{"id": "x\\u00e9", "choices": [], "usage": {"cost": 1.4e-05, "prompt_tokens": 3}}'
    doc = json.loads(data)
    out = splice_usage(data, doc["usage"], 14)
    assert out == (
        b'{"id": "x\\u00e9", "choices": [], "usage": {"cost": 0.000014, "prompt_tokens": 3, '
        b'"dexto_upstream_cost": 1.4e-05}}'
    )
    assert splice_usage(b'{"usage":{}}', {}, 1) == b'{"usage":{"cost": 0.000001}}'


@pytest.mark.parametrize(
    "event",
    [
        b'data: {"id":"g","choices":[],"usage":{"cost":1.4e-05,"prompt_tokens":3}}',
        b'data: {"id":"g","choices":[],\ndata: "usage":{"cost":1.4e-05,"prompt_tokens":3}}',
        b'data: {"id":"g","usage":{"cost":1.4e-05},"choices":[]}',
        b'data:{"id":"g","choices":[{"delta":{"content":"hi"}}],"usage":{"cost":"1e-6"}}',
    ],
)
def test_stream_usage_chunk_as_reencoded(event: bytes) -> None:
    relay = SseRelay(wants_usage=True)
    relay.feed(event + b"\n\ndata: [DONE]\n\n")
    tail = relay.tail(14)
    first, done = tail.split(b"\n\n")[:2]
    assert done == b"data: [DONE]"
    assert first.startswith(b"data: ") and b"\n" not in first  # one SSE data line
    payload = b"".join(line[5:] for line in event.split(b"\n"))
    want = json.loads(payload)
    want["usage"] = rewrite_usage(want["usage"], 14)
    got = json.loads(first[6:])
    assert got == want and list(got) == list(want)
    assert got["usage"]["cost"] == 0.000014
