"""YAML aliases that expand to a huge document, or that sit inside the value they name, are
refused at once, naming the file and the fix."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dexto.config._yaml import load_yaml_text, read_yaml
from dexto.errors import ConfigError
from tests.cli.conftest import DEXTO


def _alias_bomb(last: str) -> str:
    """Nine levels of ten aliases each (10**9 values when expanded), then ``last``."""
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join([*lines, last]) + "\n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run(
        [DEXTO, *args], env=dict(os.environ), capture_output=True, text=True, timeout=20
    )
    assert time.monotonic() - started < 20
    return proc


def _refused(proc: subprocess.CompletedProcess[str], file: Path) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert f"error: {file}: its aliases (*name) expand to more than 100000 values" in proc.stderr
    assert f"fix: replace the aliases in {file}" in proc.stderr
    assert f"mv {file} {file}.broken" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["prefs", "list"],
        ["prefs", "get", "allowedModels"],
        ["prefs", "unset", "allowedModels"],
        ["prefs", "set", "preferDextoCredits", "true"],
        ["route", "openai/gpt-4o"],
    ],
)
def test_preferences_with_an_alias_bomb(isolated_env: Path, args: list[str]) -> None:
    prefs = isolated_env / "preferences.yml"
    text = _alias_bomb("allowedModels: *a8")
    assert len(text) == 530
    prefs.write_text(text)
    _refused(_run(*args), prefs)
    assert prefs.read_text() == text


def test_agent_file_with_an_alias_bomb(tmp_path: Path) -> None:
    agent = tmp_path / "bomb.yml"
    text = _alias_bomb("llm: {provider: openai, model: gpt-4o}")
    agent.write_text(text)
    _refused(_run("route", "--agent", str(agent)), agent)
    assert agent.read_text() == text


def test_prefs_work_again_once_the_file_is_moved_aside(isolated_env: Path) -> None:
    prefs = isolated_env / "preferences.yml"
    prefs.write_text(_alias_bomb("allowedModels: *a8"))
    prefs.rename(prefs.with_name("preferences.yml.broken"))
    proc = _run("prefs", "set", "preferDextoCredits", "true")
    assert proc.returncode == 0, proc.stderr


def test_a_few_aliases_still_load() -> None:
    doc = load_yaml_text(
        "base: &b {provider: openai, model: gpt-4o}\nllm: *b\nalso: [*b, *b]\n",
        file="agent.yml",
        fix="",
    )
    assert doc["llm"] == {"provider": "openai", "model": "gpt-4o"}
    assert len(doc["also"]) == 2


# (case, YAML whose alias sits inside the value it names, line of that value)
SELF_REFERENCES = [
    ("sequence", "a: &x [*x]\n", 1),
    ("mapping", "a: &x {b: *x}\n", 1),
    ("nested, block style", "x: 1\ny:\n  z: &q\n    - 1\n    - [2, *q]\n", 3),
    ("whole document", "&x [*x]\n", 1),
]


@pytest.mark.parametrize(
    "text,line", [c[1:] for c in SELF_REFERENCES], ids=[c[0] for c in SELF_REFERENCES]
)
def test_read_yaml_refuses_a_self_referential_alias(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_yaml(path, fix="unused for aliases")
    err = info.value
    assert err.message == f"{path}:{line}: an alias (*name) refers to the value that contains it"
    assert err.file == str(path) and err.line == line
    assert f"replace the aliases in {path}" in err.fix and f"mv {path} {path}.broken" in err.fix
    assert path.read_text() == text


def test_read_yaml_refuses_an_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(_alias_bomb("llm: *a8"))
    with pytest.raises(ConfigError) as info:
        read_yaml(path, fix="unused for aliases")
    err = info.value
    assert err.message == f"{path}: its aliases (*name) expand to more than 100000 values"
    assert err.file == str(path)
    assert f"replace the aliases in {path}" in err.fix and f"mv {path} {path}.broken" in err.fix


def _refused_self_reference(proc: subprocess.CompletedProcess[str], file: Path, line: int) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert f"error: {file}:{line}: an alias (*name) refers to the value that contains it" in (
        proc.stderr
    )
    assert f"fix: replace the aliases in {file}" in proc.stderr
    assert f"mv {file} {file}.broken" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["prefs", "list"],
        ["prefs", "set", "preferDextoCredits", "true"],
        ["route", "openai/gpt-4o"],
    ],
)
def test_preferences_with_a_self_referential_alias(isolated_env: Path, args: list[str]) -> None:
    prefs = isolated_env / "preferences.yml"
    text = "preferDextoCredits: false\nallowedModels: &x [openai/gpt-4o, *x]\n"
    prefs.write_text(text)
    _refused_self_reference(_run(*args), prefs, 2)
    assert prefs.read_text() == text


def test_agent_file_with_a_self_referential_alias(tmp_path: Path) -> None:
    agent = tmp_path / "loop.yml"
    text = "llm: &x {provider: openai, model: gpt-4o, extra: *x}\n"
    agent.write_text(text)
    _refused_self_reference(_run("route", "--agent", str(agent)), agent, 1)
    assert agent.read_text() == text
