"""YAML aliases that expand to a huge document are refused at once, naming the file."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dexto.config._yaml import load_yaml_text
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
