"""Comment-preserving YAML edits: only the edited value's characters change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexto.config._yaml import load_yaml_text
from dexto.config.preferences import load_preferences, set_preference
from dexto.config.yaml_edit import edit_yaml_text, remove_yaml_text, set_yaml_values
from dexto.errors import ConfigError

DOC = """\
# My agent — hand-written, keep my notes!
description:   A "quoted" description   # trailing note

llm:
    provider: anthropic          # the real provider
    model: 'claude-sonnet-4-5-20250929'   # single-quoted on purpose
    maxOutputTokens: 8000
    routing: {prefer: dexto}
    tags: [a,  b]

# a comment between blocks
tools:
  - name: search   # list items too
extra: "double"  # kept
"""


def _plain(doc: Any) -> Any:
    from dexto.config.preferences import _plain as plain

    return plain(doc)


@pytest.mark.parametrize(
    "path, value, old, new",
    [
        (("llm", "provider"), "openai", "provider: anthropic ", "provider: openai "),
        (("llm", "model"), "gpt-5-mini", "'claude-sonnet-4-5-20250929'", "'gpt-5-mini'"),
        (("llm", "model"), "it's", "'claude-sonnet-4-5-20250929'", "'it''s'"),
        (("llm", "maxOutputTokens"), 16000, "maxOutputTokens: 8000", "maxOutputTokens: 16000"),
        (("extra",), "new value", '"double"', '"new value"'),
        (("extra",), 'say "hi"', '"double"', '"say \\"hi\\""'),
        (("llm", "tags"), ["x", "y z"], "[a,  b]", "[x, y z]"),
        (("description",), "plain words", 'A "quoted" description', "plain words"),
        (("description",), "a: colon # hash", 'A "quoted" description', '"a: colon # hash"'),
        (("llm", "provider"), True, "provider: anthropic", "provider: true"),
    ],
)
def test_value_replaced_in_place_byte_for_byte(
    path: tuple[str, ...], value: Any, old: str, new: str
) -> None:
    out = edit_yaml_text(DOC, path, value)
    assert out == DOC.replace(old, new, 1)
    doc = _plain(load_yaml_text(out, file="x", fix=""))
    node = doc
    for part in path:
        node = node[part]
    assert node == (list(value) if isinstance(value, list) else value)


@pytest.mark.parametrize(
    "path, value, added_after, added",
    [
        (("newTop",), 3, DOC, "newTop: 3\n"),
        (("llm", "temperature"), 0.5, "    tags: [a,  b]\n", "    temperature: 0.5\n"),
        (("llm", "routing", "x"), 1, None, None),  # flow-style parent → round-trip fallback
        (("memory", "kind", "name"), "sqlite", DOC, "memory:\n  kind:\n    name: sqlite\n"),
    ],
)
def test_new_keys_are_inserted_without_touching_other_lines(
    path: tuple[str, ...], value: Any, added_after: str | None, added: str | None
) -> None:
    out = edit_yaml_text(DOC, path, value)
    if added is not None and added_after is not None:
        i = DOC.index(added_after) + len(added_after)
        assert out == DOC[:i] + added + DOC[i:]
    for comment in (
        "# My agent",
        "# trailing note",
        "# the real provider",
        "# a comment between blocks",
        "# list items too",
        "# kept",
    ):
        assert comment in out


def test_block_scalar_falls_back_to_round_trip_keeping_comments() -> None:
    text = "# head\nprompt: |\n  line one\n  line two\nkeep: 1  # yes\n"
    out = edit_yaml_text(text, ("prompt",), "short")
    assert "# head" in out and "keep: 1  # yes" in out
    assert _plain(load_yaml_text(out, file="x", fix="")) == {"prompt": "short", "keep": 1}


def test_remove_deletes_only_that_line() -> None:
    out = remove_yaml_text(DOC, ("llm", "maxOutputTokens"))
    assert out == DOC.replace("    maxOutputTokens: 8000\n", "")
    assert remove_yaml_text(DOC, ("llm", "absent")) is None


def test_file_edit_keeps_backup_and_refuses_invalid_yaml(home: Path) -> None:
    path = home / "agent.yml"
    path.write_text(DOC)
    set_yaml_values(path, {("llm", "model"): "gpt-5-mini"})
    assert path.read_text() == DOC.replace("claude-sonnet-4-5-20250929", "gpt-5-mini")
    backups = list(home.glob("agent.yml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == DOC
    broken = "llm:\n  provider: [unclosed\n"
    path.write_text(broken)
    with pytest.raises(ConfigError) as info:
        set_yaml_values(path, {("llm", "model"): "x"})
    assert info.value.file == str(path) and info.value.line is not None
    assert path.read_text() == broken


PREFS_DOC = """\
# Local preferences — my notes
preferDextoCredits: true   # I like credits

# Warn me early
lowCreditsWarningUsd: 2.5
disabledProviders: [glama]  # never
"""

_values = {
    "preferDextoCredits": st.booleans(),
    "lowCreditsWarningUsd": st.floats(min_value=0, max_value=1e6, allow_nan=False),
    "disabledProviders": st.lists(st.sampled_from(["glama", "groq", "xai", "cohere"]), max_size=3),
    "defaultAgent": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
}
_ops = st.lists(
    st.sampled_from(sorted(_values)).flatmap(lambda k: st.tuples(st.just(k), _values[k])),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_any_sequence_of_sets_round_trips_and_keeps_comments(
    home: Path, ops: list[tuple[str, Any]]
) -> None:
    path = home / "preferences.yml"
    path.write_text(PREFS_DOC)
    expected: dict[str, Any] = {}
    for key, value in ops:
        set_preference(path, key, value)
        expected[key] = value
        prefs = load_preferences(path)
        for k, v in expected.items():
            assert getattr(prefs, k) == v
    text = path.read_text()
    for comment in (
        "# Local preferences — my notes",
        "# I like credits",
        "# Warn me early",
        "# never",
    ):
        assert comment in text
    untouched = [
        line
        for line in PREFS_DOC.splitlines()
        if not any(line.startswith(k + ":") for k in expected)
    ]
    lines = text.splitlines()
    assert [ln for ln in lines if ln in untouched] == untouched  # order kept
    for bak in home.glob("preferences.yml.*.bak"):
        bak.unlink()
