"""``fastjson.loads_or_miss`` gives exactly ``json.loads``'s value (same types, same float bits,
same key order) or MISS; MISS on every input where orjson and json are known to differ.
``fastjson.dumps_compact`` writes exactly the bytes of ``json.dumps`` (compact, UTF-8)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dexto.gateway import fastjson
from dexto.gateway.fastjson import MAX_OPENERS, MISS, dumps_compact, loads_or_miss
from dexto.gateway.splice import splice_usage
from dexto.gateway.validation import BadJson, load_json, parse_chat


def same(a: Any, b: Any) -> bool:
    """Equal values of identical types (floats bit for bit, -0.0 and NaN included; key order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1.0, a) == math.copysign(1.0, b) and (
            a == b or (math.isnan(a) and math.isnan(b))
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def check(raw: bytes) -> None:
    got = loads_or_miss(raw)
    if got is MISS:
        return
    assert same(got, json.loads(raw)), raw


MUST_MISS = [
    b"18446744073709551616",  # beyond 64 bits: orjson would give a float
    b"-9223372036854775809",
    b'{"seed": 99999999999999999999}',
    b"1234567890123456789",  # any 19-digit run (in range, but not worth telling apart)
    b"NaN",
    b"[Infinity]",
    b"-Infinity",
    b"1e400",
    b'"\\ud800"',
    b'"\\udc00x"',
    b"\xef\xbb\xbf{}",  # a BOM
    b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 (json reads it, with surrogatepass)
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-32-le"),
    b"[" * 1000 + b"]" * 1000,  # json: RecursionError; orjson: parsed (limit 1024)
    b"[" * (MAX_OPENERS + 1) + b"]" * (MAX_OPENERS + 1),
    b'{"a": "' + b"{" * (MAX_OPENERS + 1) + b'"}',  # (counted in strings too)
    b"",
    b"{",
    b'{"a": 1,}',
    b"\xff",
]


@pytest.mark.parametrize("raw", MUST_MISS)
def test_known_differences_are_missed(raw: bytes) -> None:
    assert loads_or_miss(raw) is MISS


HIT = [
    b"{}",
    b" \t\r\n[1, -0, -0.0, 0.1, 1e-7, 1E+2, 5e-324, 2.2250738585072011e-308] ",
    b'{"a": 1, "a": 2, "b": {"a": [true, false, null]}}',  # duplicate key: the last wins
    b'"\\ud83d\\ude00 \\u00e9 \\n\\t\\"\\\\\\/ \xc3\xa9 \xf0\x9f\x98\x80"',
    b"9223372036854775807"[:18],
    b"1e-400",
    b"123456789012345678",
    b'{"usage": {"cost": 1.395e-05, "prompt_tokens": 13}}',
]


@pytest.mark.parametrize("raw", HIT)
def test_common_documents_parse_to_json_values(raw: bytes) -> None:
    got = loads_or_miss(raw)
    assert got is not MISS
    assert same(got, json.loads(raw))


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.booleans(), st.sampled_from([None, 1, "\t"]))
@example(1.0e-5, True, None)
@example({"a": 2**64, "b": [1.5e300, -0.0]}, False, None)
def test_encoded_values(value: Any, ascii_only: bool, indent: Any) -> None:
    try:
        text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate with ensure_ascii=False: not UTF-8
        raw = text.encode("utf-8", "surrogatepass")
    check(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


json_alphabet = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b":", b" ", b'"', b"\\", b"u", b"d8", b"0", b"1", b"9",
     b"-", b"+", b".", b"e", b"E", b"a", b"true", b"null", b"NaN", b"\n", b"\x00", b"\xc3\xa9"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(json_alphabet, max_size=40).map(b"".join))
def test_json_like_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**18),
    st.integers(min_value=0, max_value=10**18),
    st.integers(min_value=-340, max_value=340),
)
def test_float_texts(whole: int, frac: int, exp: int) -> None:
    for raw in (f"{whole}.{frac}", f"{whole}.{frac}e{exp}", f"-{whole}E{exp}", f"0.{frac}"):
        check(raw.encode())


def test_request_validation_messages_unchanged() -> None:
    """Bodies orjson refuses go through json as before: the same 400 messages."""
    msgs = {}
    for raw in (b"\xff", b"\xef\xbb\xbf{}", b'{"a": NaN}', b'{"a": "\\ud800"}', b"[" * 5000):
        with pytest.raises(BadJson) as info:
            load_json(raw)
        msgs[raw[:8]] = str(info.value)
    assert msgs == {
        b"\xff": "The request body is not valid UTF-8.",
        b"\xef\xbb\xbf{}": "The request body is not valid JSON.",
        b'{"a": Na': "the request body contains NaN, which is not valid JSON",
        b'{"a": "\\': "The request body contains an unpaired UTF-16 surrogate escape.",
        b"[" * 8: "The request body is nested too deeply.",
    }
    problem, payload = parse_chat(b'{"model": "a/b", "messages": [{}], "max_tokens": 1e1}')
    assert problem == "'max_tokens' must be a positive integer." and payload == {}
    big = b'{"model": "a/b", "messages": [{}], "max_tokens": 100000000000000000000}'
    assert parse_chat(big) == ("", json.loads(big))  # an int, as json reads it


def test_splice_with_unparseable_usage_values_still_checks_keys() -> None:
    """A usage object orjson refuses (NaN) is checked by json: the splice still applies."""
    data = b'{"id": "x", "usage": {"prompt_tokens": 1, "cost": 0.5, "x": NaN}}'
    usage = json.loads(data)["usage"]
    out = splice_usage(data, usage, 1_000_000)
    assert out == (
        b'{"id": "x", "usage": {"prompt_tokens": 1, "cost": 1.000000, "x": NaN, '
        b'"dexto_upstream_cost": 0.5}}'
    )


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


finite = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(finite)
@example(1e-05)
@example(1e-06)
@example(-9.210986675838746e-06)
@example(1.5e300)
@example(1e16)
@example({"temperature": 0.7, "seed": 2**64, "x": [5e-324]})
def test_dumps_compact_is_json_dumps(value: Any) -> None:
    assert dumps_compact(value) == compact(value)


@pytest.mark.parametrize(
    "value",
    [
        {"model": "a/b", "messages": [{"role": "user", "content": "héllo \u2028 😀 \x00\x7f\x9f"}]},
        {"t": [0.1, 1.0, 100.0, -0.0, 1e22, 1e16, 1234567890123456.8, 5e-324, 0.0001, 1e-05]},
        {"prose with e-mail": "re-run"},  # "e-" anywhere: written by json
        [[[[[]]]]],
        {"deep": json.loads("[" * 300 + "]" * 300)},  # beyond orjson's 254 levels
    ],
)
def test_dumps_compact_cases(value: Any) -> None:
    assert dumps_compact(value) == compact(value)


def test_forwarded_body_is_the_compact_reencoding() -> None:
    """What the proxy sends upstream: the parsed request, re-encoded compactly."""
    raw = (
        b'{"model": "a/b", "temperature": 0.00001, "messages": [{"role": "user", "content": "x"}]}'
    )
    problem, payload = parse_chat(raw)
    assert problem == ""
    assert dumps_compact(payload) == (
        b'{"model":"a/b","temperature":1e-05,"messages":[{"role":"user","content":"x"}]}'
    )


def test_loads_falls_back_only_on_a_miss() -> None:
    calls: list[bytes] = []

    def fallback(raw: bytes) -> object:
        calls.append(raw)
        return json.loads(raw)

    assert fastjson.loads(b'{"a": [1, 2.5]}', fallback) == {"a": [1, 2.5]}
    assert calls == []
    big = b"[" + b"9" * 30 + b"]"  # beyond 64 bits: a miss, so json's integer
    assert fastjson.loads(big, fallback) == [int("9" * 30)]
    assert calls == [big]
    with pytest.raises(ValueError):
        fastjson.loads(b"NaN]")  # json.loads's error on a miss
