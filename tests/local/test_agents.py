"""Bundled agents: install, update only unmodified copies, diff, registry bundledHash, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dexto.agents.bundled import bundled_agent_ids, bundled_text, content_hash
from dexto.config.agent import load_agent_file
from tests.local.conftest import Run

OLD_BUNDLED = b"# an older bundled version\nllm:\n  provider: openai\n  model: gpt-4o\n"


def _registry(home: Path) -> dict[str, dict[str, str]]:
    data = json.loads((home / "agents" / "registry.json").read_text())
    assert data["version"] == 1
    agents: dict[str, dict[str, str]] = data["agents"]
    return agents


def _file(home: Path, agent_id: str) -> Path:
    return home / "agents" / agent_id / f"{agent_id}.yml"


def _pretend_installed_old(home: Path, agent_id: str) -> None:
    """As if an older dexto had installed ``agent_id`` from a bundle that has since changed."""
    _file(home, agent_id).write_bytes(OLD_BUNDLED)
    reg = json.loads((home / "agents" / "registry.json").read_text())
    reg["agents"][agent_id]["bundledHash"] = content_hash(OLD_BUNDLED)
    (home / "agents" / "registry.json").write_text(json.dumps(reg))


def test_bundled_agents_are_valid_and_native() -> None:
    assert {"default-agent", "coding-agent"} <= set(bundled_agent_ids())
    for agent_id in bundled_agent_ids():
        text = bundled_text(agent_id).decode()
        assert "provider: dexto" not in text
        assert text.lstrip().startswith("#")  # explains itself to the person editing it


def test_install_list_and_registry(dexto: Run, home: Path) -> None:
    r = dexto("agents", "install", "--all", "--json")
    assert r.returncode == 0, r.stderr
    assert {c["action"] for c in json.loads(r.stdout)["changes"]} == {"installed"}
    reg = _registry(home)
    for agent_id in bundled_agent_ids():
        assert _file(home, agent_id).read_bytes() == bundled_text(agent_id)
        assert reg[agent_id]["bundledHash"] == content_hash(bundled_text(agent_id))
        load_agent_file(_file(home, agent_id))
    custom = home / "agents" / "mine" / "mine.yml"
    custom.parent.mkdir()
    custom.write_text("llm: {provider: openai, model: gpt-5-mini}\n")
    listed = {
        a["id"]: a["state"] for a in json.loads(dexto("agents", "list", "--json").stdout)["agents"]
    }
    assert listed == {**{i: "up-to-date" for i in bundled_agent_ids()}, "mine": "custom"}
    r = dexto("agents", "install", "default-agent")
    assert r.returncode == 0 and "already up to date" in r.stdout


def test_update_replaces_unmodified_and_keeps_modified(dexto: Run, home: Path) -> None:
    assert dexto("agents", "install", "default-agent", "coding-agent").returncode == 0
    _pretend_installed_old(home, "default-agent")
    _pretend_installed_old(home, "coding-agent")
    mine = OLD_BUNDLED + b"# my own note\n"
    _file(home, "coding-agent").write_bytes(mine)
    states = {
        a["id"]: a["state"] for a in json.loads(dexto("agents", "list", "--json").stdout)["agents"]
    }
    assert states["default-agent"] == "update-available"
    assert states["coding-agent"] == "modified"
    r = dexto("agents", "update", "--json")
    assert r.returncode == 0, r.stderr
    actions = {c["id"]: c for c in json.loads(r.stdout)["changes"]}
    assert actions["default-agent"]["action"] == "updated"
    assert Path(actions["default-agent"]["backup"]).read_bytes() == OLD_BUNDLED
    assert actions["coding-agent"]["action"] == "kept-modified"
    assert actions["research-agent"]["action"] == "not-installed"
    assert _file(home, "default-agent").read_bytes() == bundled_text("default-agent")
    assert _file(home, "coding-agent").read_bytes() == mine
    reg = _registry(home)
    assert reg["default-agent"]["bundledHash"] == content_hash(bundled_text("default-agent"))
    assert reg["coding-agent"]["bundledHash"] == content_hash(OLD_BUNDLED)
    r = dexto("agents", "update")
    assert "modified by you — left alone" in r.stdout


def test_diff_and_forced_install_keep_a_backup(dexto: Run, home: Path) -> None:
    assert dexto("agents", "install").returncode == 0
    path = _file(home, "default-agent")
    assert "no differences" in dexto("agents", "diff", "default-agent").stdout
    edited = path.read_text().replace("claude-sonnet-4-5-20250929", "claude-opus-4-7")
    path.write_text(edited)
    d = dexto("agents", "diff", "default-agent").stdout
    assert "-  model: claude-opus-4-7" in d and "+  model: claude-sonnet-4-5-20250929" in d
    r = dexto("agents", "install", "default-agent")
    assert r.returncode == 2 and "--force" in r.stderr
    assert path.read_text() == edited
    assert dexto("agents", "install", "default-agent", "--force").returncode == 0
    assert path.read_bytes() == bundled_text("default-agent")
    backups = list(path.parent.glob("default-agent.yml.*.bak"))
    assert [b.read_text() for b in backups] == [edited]


@pytest.mark.parametrize(
    "text, where",
    [
        ("{not json", ":1"),
        ('{"version": 1}', "agents"),
        (
            '{"version": 1, "agents": {"default-agent": {"installedAt": "x"}}}',
            "agents.default-agent.bundledHash",
        ),
    ],
)
def test_corrupt_registry_is_reported_and_kept(
    dexto: Run, home: Path, text: str, where: str
) -> None:
    reg = home / "agents" / "registry.json"
    reg.parent.mkdir()
    reg.write_text(text)
    for args in (("agents", "install"), ("agents", "update"), ("agents", "list")):
        r = dexto(*args)
        assert r.returncode == 2
        assert str(reg) in r.stderr and where in r.stderr and "fix:" in r.stderr
        assert reg.read_text() == text
    assert not _file(home, "default-agent").exists()


def test_unknown_agent_ids(dexto: Run) -> None:
    for args in (
        ("agents", "install", "nope"),
        ("agents", "update", "nope"),
        ("agents", "diff", "../etc"),
    ):
        r = dexto(*args, "--json")
        assert r.returncode == 2
        assert "default-agent" in json.loads(r.stdout)["error"]["fix"]


def test_a_broken_agent_file_gets_a_fix_that_works_there(dexto: Run, home: Path) -> None:
    """Invalid YAML in an installed agent: the error names the file and line, and its fix is a
    command that restores the bundled copy (which then routes), not a help page."""
    assert dexto("agents", "install", "default-agent").returncode == 0
    path = home / "agents" / "default-agent" / "default-agent.yml"
    path.write_text("llm: [unclosed\n")
    r = dexto("route", "openai/gpt-4o", "--agent", "default-agent")
    assert r.returncode == 2 and f"{path}:2: invalid YAML" in r.stderr
    fix = next(line for line in r.stderr.splitlines() if line.startswith("fix:"))
    assert "dexto agents install ID --force" in fix and "--help" not in fix
    assert dexto("agents", "install", "default-agent", "--force").returncode == 0
    env = {"OPENAI_API_KEY": "sk-test-key-0123456789"}
    assert dexto("route", "openai/gpt-4o", "--agent", "default-agent", env=env).returncode == 0
    assert list(path.parent.glob("default-agent.yml.*.bak"))  # the broken copy is kept
