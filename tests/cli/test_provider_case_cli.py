"""Provider IDs typed in another case give the canonical answer on the CLI and the server API.

Each surface is asked twice, once with the provider as typed and once in its canonical spelling;
the two answers must be equal (the model part is sent exactly as typed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Run
from tests.server._serve import DEXTO_ONLY, start

KEYS = {"DEXTO_API_KEY": "dxk_case_0123456789", "OPENAI_API_KEY": "sk-oai-case"}
TABLE = [  # (as typed, canonical, model)
    ("OpenAI", "openai", "gpt-4o"),
    ("Anthropic", "anthropic", "claude-sonnet-4-5-20250929"),
    ("OPENROUTER", "openrouter", "Z-AI/GLM-4.5-Air:free"),
]


@pytest.mark.parametrize("typed,canonical,model", TABLE)
def test_cli_surfaces_answer_as_for_the_canonical_id(
    dexto: Run, tmp_path: Path, typed: str, canonical: str, model: str
) -> None:
    def answers(provider: str) -> dict[str, Any]:
        agent = tmp_path / f"{provider}.yml"
        agent.write_text(f"llm:\n  provider: {provider}\n  model: '{model}'\n")
        runs = {
            "route": dexto("route", f"{provider}/{model}", "--json", env=KEYS),
            "route --agent": dexto("route", "--agent", str(agent), "--json", env=KEYS),
            "models --provider": dexto(
                "models", "--provider", provider, "--offline", "--json", env=KEYS
            ),
        }
        for name, r in runs.items():
            assert r.returncode == 0, (name, r.stderr)
        return {name: json.loads(r.stdout) for name, r in runs.items()}

    got, want = answers(typed), answers(canonical)
    assert got == want
    assert (got["route"]["provider"], got["route"]["model"]) == (canonical, model)


def test_auth_set_stores_the_canonical_provider_entry(dexto: Run, isolated_env: Path) -> None:
    r = dexto("auth", "set", "OpenAI", "--stdin", input="sk-typed-in-case-0123\n")
    assert r.returncode == 0, r.stderr
    assert list(json.loads((isolated_env / "auth.json").read_text())) == ["openai"]
    route = dexto("route", "openai/gpt-4o", "--json")
    assert json.loads(route.stdout)["credentialSource"] == "auth-store:openai"
    gone = dexto("auth", "remove", "OPENAI")
    assert gone.returncode == 0 and "removed openai" in gone.stdout


def test_server_surfaces_answer_as_for_the_canonical_id(isolated_env: Path, tmp_path: Path) -> None:
    agent = tmp_path / "agent.yml"
    agent.write_text("llm:\n  provider: Anthropic\n  model: claude-sonnet-4-5-20250929\n")
    served = start(isolated_env, agent, DEXTO_ONLY)
    try:
        current = served.get("/llm/current").json()
        assert current["provider"] == "anthropic" and current["error"] is None
        assert current["decision"]["provider"] == "anthropic"
        for path, params in [
            ("/llm/catalog", {"provider": "{}"}),
            ("/llm/validate", {"provider": "{}", "model": "Z-AI/GLM-4.5-Air:free"}),
        ]:
            typed = {k: v.format("OpenRouter") for k, v in params.items()}
            canonical = {k: v.format("openrouter") for k, v in params.items()}
            a, b = served.get(path, params=typed), served.get(path, params=canonical)
            assert a.status_code == b.status_code == 200, (path, a.text)
            assert a.json() == b.json(), path
        switched = served.post("/llm/switch", json={"provider": "OpenAI", "model": "GPT-4o"})
        assert switched.status_code == 200, switched.text
        assert (switched.json()["provider"], switched.json()["model"]) == ("openai", "GPT-4o")
        assert "provider: openai\n" in agent.read_text()
        assert "model: GPT-4o\n" in agent.read_text()
    finally:
        served.stop()
