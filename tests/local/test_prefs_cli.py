"""``dexto prefs`` through the real entry point: typed validation, comments kept, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.local.conftest import Run

HAND_WRITTEN = """\
# my preferences (hand-written)
preferDextoCredits: true    # credits first

lowCreditsWarningUsd: 1.25  # dollars
"""


def test_set_get_list_round_trip_keeps_the_file(dexto: Run, home: Path) -> None:
    path = home / "preferences.yml"
    path.write_text(HAND_WRITTEN)
    r = dexto("prefs", "set", "preferDextoCredits", "false")
    assert r.returncode == 0, r.stderr
    assert path.read_text() == HAND_WRITTEN.replace(": true", ": false", 1)
    got = dexto("prefs", "get", "preferDextoCredits", "--json")
    assert json.loads(got.stdout) == {"key": "preferDextoCredits", "value": False}
    assert dexto("prefs", "get", "preferDextoCredits").stdout.strip() == "false"
    listed = json.loads(dexto("prefs", "list", "--json").stdout)["preferences"]
    assert listed["preferDextoCredits"] == {
        "value": False,
        "set": True,
        "description": listed["preferDextoCredits"]["description"],
    }
    assert listed["disabledProviders"]["set"] is False
    r = dexto("prefs", "set", "disabledProviders", "glama, groq")
    assert r.returncode == 0, r.stderr
    assert path.read_text().startswith(HAND_WRITTEN.replace(": true", ": false", 1))
    assert path.read_text().endswith("disabledProviders: [glama, groq]\n")
    assert dexto("prefs", "unset", "disabledProviders").returncode == 0
    assert path.read_text() == HAND_WRITTEN.replace(": true", ": false", 1)
    assert list(home.glob("preferences.yml.*.bak"))


def test_route_honours_the_preference(dexto: Run) -> None:
    env = {"DEXTO_API_KEY": "dxk_test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    assert dexto("prefs", "set", "preferDextoCredits", "false").returncode == 0
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=env)
    assert json.loads(r.stdout)["route"] == "direct"
    assert dexto("prefs", "set", "preferDextoCredits", "TRUE").returncode == 0
    r = dexto("route", "anthropic/claude-sonnet-4-5-20250929", "--json", env=env)
    assert json.loads(r.stdout)["route"] == "dexto"


@pytest.mark.parametrize(
    "key, value, code, words",
    [
        ("preferDextoCredits", "maybe", "INVALID_CONFIG", "use true or false"),
        ("preferDextoCredits", "1", "INVALID_CONFIG", "use true or false"),
        ("preferDextoCredits", "yes", "INVALID_CONFIG", "use true or false"),
        ("preferDextoCredits", "", "INVALID_CONFIG", "use true or false"),
        ("lowCreditsWarningUsd", "-1", "INVALID_CONFIG", "number"),
        ("lowCreditsWarningUsd", "abc", "INVALID_CONFIG", "number"),
        ("lowCreditsWarningUsd", "nan", "INVALID_CONFIG", "number"),
        ("lowCreditsWarningUsd", "inf", "INVALID_CONFIG", "number"),
        ("enabledProviders", "anthropic,dexto", "PROVIDER_NOT_ALLOWED", "dexto login"),
        ("disabledProviders", "nosuch", "UNKNOWN_PROVIDER", "use one of"),
        ("defaultAgent", "   ", "INVALID_CONFIG", "unset"),
        ("noSuchKey", "true", "INVALID_CONFIG", "preferDextoCredits"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_written(
    dexto: Run, home: Path, key: str, value: str, code: str, words: str
) -> None:
    path = home / "preferences.yml"
    path.write_text(HAND_WRITTEN)
    r = dexto("prefs", "set", key, value, "--json")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == code
    assert words in err["fix"] or words in err["message"]
    assert path.read_text() == HAND_WRITTEN
    assert not list(home.glob("preferences.yml.*.bak"))


@pytest.mark.parametrize(
    "text, line, field, repaired",
    [
        ("preferDextoCredits: [unclosed\n", 2, None, None),
        ("a: 1\n  b: 2\n", 2, None, None),
        ("- a list\n", None, None, None),
        (
            "# mine\npreferDextoCredits: maybe  # hmm\n",
            2,
            "preferDextoCredits",
            "# mine\npreferDextoCredits: true  # hmm\n",
        ),
        (
            "# c\nlowCreditsWarningUsd: 1\nbogusKey: 3\n",
            3,
            "bogusKey",
            "# c\nlowCreditsWarningUsd: 1\n",
        ),
    ],
)
def test_corrupt_file_is_reported_and_the_fix_repairs_it(
    dexto: Run, home: Path, text: str, line: int | None, field: str | None, repaired: str | None
) -> None:
    path = home / "preferences.yml"
    path.write_text(text)
    r = dexto("prefs", "list")
    assert r.returncode == 2
    assert str(path) in r.stderr and "fix:" in r.stderr
    if line is not None:
        assert f"{path}:{line}" in r.stderr
    if field is not None:
        assert field in r.stderr
    assert path.read_text() == text
    fix = r.stderr.split("fix: ", 1)[1]
    if repaired is None:  # does not parse: `prefs set` refuses, the named `mv` works
        assert dexto("prefs", "set", "preferDextoCredits", "true").returncode == 2
        assert path.read_text() == text
        assert f"mv {path} {path}.broken" in fix
        path.rename(f"{path}.broken")
    else:  # the first command the fix names repairs the value, keeping the rest of the file
        command = fix.split("`")[1].replace("VALUE", "true").split()
        assert command[:2] == ["dexto", "prefs"]
        done = dexto(*command[1:])
        assert done.returncode == 0, done.stderr
        assert path.read_text() == repaired
    assert dexto("prefs", "list").returncode == 0


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_a_hand_written_non_finite_number_is_refused_not_printed_as_invalid_json(
    dexto: Run, home: Path, value: str
) -> None:
    """YAML's ``.inf``/``.nan`` are floats: without a check they loaded, and ``prefs list --json``
    printed ``Infinity`` (not JSON)."""
    path = home / "preferences.yml"
    path.write_text(f"lowCreditsWarningUsd: {value}\n")
    r = dexto("prefs", "list", "--json")
    assert r.returncode == 2
    error = json.loads(r.stdout or r.stderr)["error"]
    assert "lowCreditsWarningUsd" in json.dumps(error)
    assert path.read_text() == f"lowCreditsWarningUsd: {value}\n"
