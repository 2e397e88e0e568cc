"""The auth store: typed read/write, 0600 on every write, cross-process locking, OAuth refresh."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.auth.refresh import (
    OAuthRefresher,
    ensure_fresh,
    needs_refresh,
    register_refresher,
    unregister_refresher,
)
from dexto.auth.store import (
    ApiEntry,
    OAuthEntry,
    WellKnownEntry,
    read_auth_store,
    remove_entry,
    set_entry,
    update_auth_store,
)
from dexto.errors import AuthFailedError, ConfigError
from tests.local.conftest import file_mode

SECRET = "sk-ant-SECRET-VALUE-0123456789"


def test_typed_round_trip_and_mode(home: Path) -> None:
    path = home / "auth.json"
    set_entry(path, "anthropic", ApiEntry(type="api", key=SECRET))
    set_entry(path, "acme", OAuthEntry(type="oauth", access="a1", refresh="r1", expires=5))
    set_entry(path, "corp", WellKnownEntry(type="wellknown", key="k", token="t"))
    store = read_auth_store(path)
    assert store["anthropic"] == ApiEntry(type="api", key=SECRET)
    assert isinstance(store["acme"], OAuthEntry) and store["acme"].refresh == "r1"
    assert isinstance(store["corp"], WellKnownEntry)
    assert file_mode(path) == 0o600
    assert SECRET not in repr(store)
    assert remove_entry(path, "acme") is True
    assert remove_entry(path, "acme") is False
    assert set(read_auth_store(path)) == {"anthropic", "corp"}
    assert file_mode(path) == 0o600


def test_wider_mode_warns_and_next_write_restores_0600(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = home / "auth.json"
    path.write_text(json.dumps({"openai": {"type": "api", "key": SECRET}}))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="dexto.auth"):
        read_auth_store(path)
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    set_entry(path, "groq", ApiEntry(type="api", key="gsk_x"))
    assert file_mode(path) == 0o600
    assert set(read_auth_store(path)) == {"openai", "groq"}


@pytest.mark.parametrize(
    "text, field, line",
    [
        ('{"anthropic": {"type": "api", "key": "x"', None, 1),
        ('{\n  "anthropic": {"type": "api", "key": "x"},\n  oops\n}', None, 3),
        (json.dumps({"anthropic": {"type": "bogus", "key": SECRET}}), "anthropic", None),
        (json.dumps({"anthropic": {"type": "api", "key": ""}}), "anthropic.api.key", None),
        (
            json.dumps({"anthropic": {"type": "api", "key": SECRET, "extra": SECRET}}),
            "anthropic.api.extra",
            None,
        ),
        (json.dumps(["not", "a", "mapping"]), None, None),
    ],
)
def test_corrupt_store_is_reported_and_never_overwritten(
    home: Path, text: str, field: str | None, line: int | None
) -> None:
    path = home / "auth.json"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        set_entry(path, "openai", ApiEntry(type="api", key="sk-new"))
    err = info.value
    assert err.file == str(path)
    assert err.line == line
    if field is not None:
        assert err.field == field
    assert "fix" in err.to_dict()["error"] and err.fix
    assert SECRET not in str(err)
    assert path.read_text() == text


def test_unchanged_store_is_not_rewritten(home: Path) -> None:
    path = home / "auth.json"
    set_entry(path, "openai", ApiEntry(type="api", key="sk-1"))
    before = path.stat().st_mtime_ns
    assert remove_entry(path, "missing") is False
    assert update_auth_store(path, lambda store: len(store)) == 1
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", ["", "Anthropic", "a b", "x" * 65, "../etc", "é"])
def test_invalid_entry_names_are_refused(home: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        set_entry(home / "auth.json", name, ApiEntry(type="api", key="k"))
    assert not (home / "auth.json").exists()


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dexto.auth.store import ApiEntry, set_entry
    path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(n):
        set_entry(path, f"{who}-{i}", ApiEntry(type="api", key=f"key-{who}-{i}"))
""")


def test_concurrent_writer_processes_do_not_lose_updates(home: Path) -> None:
    path = home / "auth.json"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{w}", "25"])
        for w in range(6)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    store = read_auth_store(path)
    assert set(store) == {f"p{w}-{i}" for w in range(6) for i in range(25)}
    assert file_mode(path) == 0o600
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


class FakeRefresher:
    def __init__(self) -> None:
        self.calls = 0

    def refresh(self, entry: OAuthEntry) -> OAuthEntry:
        self.calls += 1
        return OAuthEntry(
            type="oauth", access=f"access-{self.calls}", refresh=entry.refresh, expires=10_000_000
        )


@pytest.fixture
def refresher() -> Iterator[FakeRefresher]:
    r = FakeRefresher()
    assert isinstance(r, OAuthRefresher)
    register_refresher("acme", r)
    yield r
    unregister_refresher("acme")


def test_oauth_refreshed_before_expiry_margin(home: Path, refresher: FakeRefresher) -> None:
    path = home / "auth.json"
    set_entry(path, "acme", OAuthEntry(type="oauth", access="old", refresh="r", expires=1_200_000))
    fresh = ensure_fresh(path, "acme", margin_s=300, now_ms=1_000_000)  # 200 s left < 300 s
    assert isinstance(fresh, OAuthEntry) and fresh.access == "access-1"
    assert read_auth_store(path)["acme"] == fresh
    assert file_mode(path) == 0o600
    again = ensure_fresh(path, "acme", margin_s=300, now_ms=1_000_000)
    assert again == fresh and refresher.calls == 1


def test_oauth_not_refreshed_when_far_from_expiry(home: Path, refresher: FakeRefresher) -> None:
    path = home / "auth.json"
    entry = OAuthEntry(type="oauth", access="ok", refresh="r", expires=10_000_000)
    set_entry(path, "acme", entry)
    assert ensure_fresh(path, "acme", now_ms=1_000_000) == entry
    assert refresher.calls == 0
    assert ensure_fresh(path, "absent") is None


def test_refresh_without_refresher_or_failing_is_typed(home: Path) -> None:
    path = home / "auth.json"
    set_entry(
        path, "nobody", OAuthEntry(type="oauth", access="SECRET-A", refresh="SECRET-R", expires=1)
    )
    with pytest.raises(AuthFailedError) as info:
        ensure_fresh(path, "nobody", now_ms=10_000)
    assert "SECRET" not in str(info.value) and "dexto auth set nobody" in info.value.fix

    class Broken:
        def refresh(self, entry: OAuthEntry) -> OAuthEntry:
            raise RuntimeError("boom SECRET-R")

    register_refresher("nobody", Broken())
    try:
        with pytest.raises(AuthFailedError) as info2:
            ensure_fresh(path, "nobody", now_ms=10_000)
    finally:
        unregister_refresher("nobody")
    assert "SECRET" not in str(info2.value)
    assert read_auth_store(path)["nobody"].access == "SECRET-A"  # type: ignore[union-attr]


def test_needs_refresh_table() -> None:
    api = ApiEntry(type="api", key="k")
    assert not needs_refresh(api, now_ms=0)
    assert not needs_refresh(OAuthEntry(type="oauth", access="a", expires=0), now_ms=10**12)
    assert needs_refresh(OAuthEntry(type="oauth", access="a", expires=100), now_ms=200)
    assert needs_refresh(OAuthEntry(type="oauth", access="a", expires=1000), now_ms=0, margin_s=1)
    assert not needs_refresh(
        OAuthEntry(type="oauth", access="a", expires=1001), now_ms=0, margin_s=1
    )


_RACER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dexto.auth.refresh import ensure_fresh, register_refresher
    from dexto.auth.store import OAuthEntry
    path, log = Path(sys.argv[1]), Path(sys.argv[2])

    class Counting:
        def refresh(self, entry):
            with open(log, "a") as fh:
                fh.write("x")
            return OAuthEntry(type="oauth", access="new", refresh=entry.refresh,
                              expires=10**13)

    register_refresher("acme", Counting())
    assert ensure_fresh(path, "acme").access == "new"
""")


def test_racing_processes_refresh_once(home: Path) -> None:
    path, log = home / "auth.json", home / "calls.log"
    set_entry(path, "acme", OAuthEntry(type="oauth", access="old", refresh="r", expires=1))
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(log)]) for _ in range(5)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * 5
    assert log.read_text() == "x"
    assert os.stat(path).st_mode & 0o777 == 0o600


_NAMES = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True)
_KEYS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
    min_size=8,
    max_size=20,
).map(lambda k: "sk-" + k)


@settings(max_examples=60, deadline=None)
@given(store=st.dictionaries(_NAMES, _KEYS, min_size=1, max_size=5), data=st.data())
def test_a_name_given_twice_is_refused_and_removing_it_repairs(
    tmp_path_factory: pytest.TempPathFactory, store: dict[str, str], data: st.DataObject
) -> None:
    """Parsing never silently keeps one of two entries with the same name; removing that name
    leaves exactly the other entries."""
    from dexto.auth.store import parse_auth_store

    twice = data.draw(st.sampled_from(sorted(store)))
    pairs = [f'"{n}": {{"type": "api", "key": "{k}"}}' for n, k in store.items()]
    dup = f'"{twice}": {{"type": "api", "key": "sk-other-secret"}}'
    pairs.insert(data.draw(st.integers(0, len(pairs))), dup)
    text = "{" + ", ".join(pairs) + "}"
    with pytest.raises(ConfigError) as info:
        parse_auth_store(text, file="auth.json")
    assert "given twice" in info.value.message
    assert not any(k in str(info.value) for k in store.values())
    path = tmp_path_factory.mktemp("dup") / "auth.json"
    path.write_text(text)
    assert remove_entry(path, twice) is True
    assert {
        n: e.key
        for n, e in read_auth_store(path).items()  # every entry here is "api"
    } == {n: k for n, k in store.items() if n != twice}
