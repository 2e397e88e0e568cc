"""``dexto models add/remove``: references only, marketplace checks, bad files, concurrent adds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dexto.cli.custom_models_cmd import reference_name
from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import write_cache
from tests._samples import SAMPLE_ROWS
from tests.local.conftest import Run, cli_env, file_mode

RAW_KEY = "sk-vllm-RAW-SECRET-987654321"
QWEN_REF = reference_name("openai-compatible", "qwen-local")


def _models(home: Path) -> list[dict[str, object]]:
    data = json.loads((home / "models" / "custom-models.json").read_text())
    assert data["version"] == 1
    models: list[dict[str, object]] = data["models"]
    return models


def test_raw_key_goes_to_auth_store_and_only_a_reference_to_the_file(
    dexto: Run, home: Path
) -> None:
    r = dexto(
        "models",
        "add",
        "--provider",
        "openai-compatible",
        "--name",
        "qwen-local",
        "--base-url",
        "http://localhost:8000/v1/",
        "--display-name",
        "Qwen (vLLM)",
        "--max-input-tokens",
        "32000",
        "--max-output-tokens",
        "4096",
        "--reasoning-effort",
        "low",
        "--api-key",
        RAW_KEY,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"]["apiKeyRef"] == QWEN_REF
    assert out["route"] == "direct"
    text = (home / "models" / "custom-models.json").read_text()
    assert RAW_KEY not in text and RAW_KEY not in r.stdout + r.stderr
    assert _models(home) == [
        {
            "name": "qwen-local",
            "provider": "openai-compatible",
            "baseURL": "http://localhost:8000/v1",
            "displayName": "Qwen (vLLM)",
            "maxInputTokens": 32000,
            "maxOutputTokens": 4096,
            "reasoningEffort": "low",
            "apiKeyRef": QWEN_REF,
        }
    ]
    auth = json.loads((home / "auth.json").read_text())
    assert auth[QWEN_REF] == {"type": "api", "key": RAW_KEY}
    assert file_mode(home / "auth.json") == 0o600
    listed = json.loads(dexto("models", "--provider", "openai-compatible", "--json").stdout)
    assert [m["id"] for m in listed["providers"]["openai-compatible"]["models"]] == ["qwen-local"]
    r = dexto("models", "remove", "qwen-local", "--json")
    assert json.loads(r.stdout)["keyRemoved"] is True
    assert _models(home) == []
    assert QWEN_REF not in json.loads((home / "auth.json").read_text())


def test_api_key_from_stdin_and_env_reference(dexto: Run, home: Path) -> None:
    r = dexto(
        "models",
        "add",
        "--provider",
        "litellm",
        "--name",
        "proxy-model",
        "--base-url",
        "http://127.0.0.1:4000",
        "--api-key",
        "-",
        input=RAW_KEY + "\n",
    )
    assert r.returncode == 0, r.stderr
    assert RAW_KEY not in (home / "models" / "custom-models.json").read_text()
    r = dexto(
        "models",
        "add",
        "--provider",
        "glama",
        "--name",
        "some/model",
        "--api-key-env",
        "MY_GLAMA_KEY",
    )
    assert r.returncode == 0, r.stderr
    assert _models(home)[1] == {
        "name": "some/model",
        "provider": "glama",
        "apiKeyEnv": "MY_GLAMA_KEY",
    }


@pytest.mark.parametrize(
    "cached, status", [(True, "known"), (False, "known")]
)  # without a cache the bundled snapshot answers
def test_openrouter_id_kept_exactly_and_checked(
    dexto: Run, home: Path, cached: bool, status: str
) -> None:
    if cached:
        write_cache(DextoPaths(home), SAMPLE_ROWS)
    r = dexto(
        "models",
        "add",
        "--provider",
        "openrouter",
        "--name",
        "z-ai/glm-4.5-air:free",
        "--json",
        env={"DEXTO_API_KEY": "dxk_test"},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["marketplace"] == status
    assert out["route"] == "dexto"  # served by Dexto credits: no OPENROUTER_API_KEY needed
    assert _models(home) == [{"name": "z-ai/glm-4.5-air:free", "provider": "openrouter"}]


def test_unknown_openrouter_id_warns_but_is_saved(dexto: Run, home: Path) -> None:
    write_cache(DextoPaths(home), SAMPLE_ROWS)
    r = dexto("models", "add", "--provider", "openrouter", "--name", "Vendor/Not-Listed:beta")
    assert r.returncode == 0
    assert "not in the marketplace list" in r.stderr
    assert "dexto login" in r.stdout  # no credentials yet: says how to get them
    assert _models(home)[0]["name"] == "Vendor/Not-Listed:beta"


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--provider", "dexto", "--name", "x"], "PROVIDER_NOT_ALLOWED", "openrouter"),
        (["--provider", "anthropic", "--name", "x"], "UNKNOWN_PROVIDER", "use one of"),
        (["--provider", "openai-compatible", "--name", "x"], "INVALID_CONFIG", "pass --base-url"),
        (
            ["--provider", "local", "--name", "x", "--file-path", "/m/x.bin"],
            "INVALID_CONFIG",
            ".gguf",
        ),
        (["--provider", "ollama", "--name", "bad id"], "INVALID_CONFIG", "whitespace"),
        (
            ["--provider", "ollama", "--name", "llama3", "--max-input-tokens", "0"],
            "INVALID_CONFIG",
            "greater than 0",
        ),
        (
            ["--provider", "litellm", "--name", "m", "--base-url", "ftp://x"],
            "INVALID_CONFIG",
            "http",
        ),
        (
            ["--provider", "ollama", "--name", "llama3", "--api-key-env", "1BAD"],
            "INVALID_CONFIG",
            "environment variable",
        ),
        (
            [
                "--provider",
                "openai-compatible",
                "--name",
                "m",
                "--base-url",
                "http://h",
                "--api-key",
                "has space",
            ],
            "INVALID_CONFIG",
            "spaces",
        ),
    ],
)
def test_invalid_models_change_nothing(
    dexto: Run, home: Path, args: list[str], code: str, words: str
) -> None:
    r = dexto("models", "add", *args, "--json")
    assert r.returncode == 2, r.stdout
    err = json.loads(r.stdout)["error"]
    assert err["code"] == code and words in err["message"] + err["fix"]
    assert not (home / "models" / "custom-models.json").exists()
    assert not (home / "auth.json").exists()


def test_duplicates_replace_and_ambiguous_remove(dexto: Run, home: Path) -> None:
    assert dexto("models", "add", "--provider", "ollama", "--name", "llama3").returncode == 0
    r = dexto("models", "add", "--provider", "ollama", "--name", "llama3", "--json")
    assert json.loads(r.stdout)["error"]["fix"].startswith("pass --replace")
    r = dexto(
        "models",
        "add",
        "--provider",
        "ollama",
        "--name",
        "llama3",
        "--display-name",
        "Llama 3",
        "--replace",
        "--json",
    )
    assert json.loads(r.stdout)["replaced"] is True
    assert dexto("models", "add", "--provider", "openrouter", "--name", "llama3").returncode == 0
    r = dexto("models", "remove", "llama3", "--json")
    assert r.returncode == 2 and "--provider" in json.loads(r.stdout)["error"]["fix"]
    assert dexto("models", "remove", "llama3", "--provider", "ollama").returncode == 0
    assert [m["provider"] for m in _models(home)] == ["openrouter"]
    r = dexto("models", "remove", "nope")
    assert r.returncode == 2 and "no custom model named 'nope'" in r.stderr


def test_plain_listing_still_works_with_actions(dexto: Run) -> None:
    r = dexto("models", "--provider", "anthropic", "--search", "sonnet", "--json")
    assert r.returncode == 0
    assert list(json.loads(r.stdout)["providers"]) == ["anthropic"]


@pytest.mark.parametrize(
    "text, line, field",
    [
        ('{"version": 1, "models": [', 1, None),
        ('{"version": 1, "models": {}}', None, "models"),
        ('{"version": 2, "models": []}', None, "version"),
        (
            '{"version": 1, "models": [{"name": "m", "provider": "ollama", "apiKey": "sk-RAW"}]}',
            None,
            "models[0]",
        ),
        (
            '{"version": 1, "models": [{"name": "m", "provider": "dexto"}]}',
            None,
            "models[0].provider",
        ),
    ],
)
def test_corrupt_models_file_is_reported_and_kept(
    dexto: Run, home: Path, text: str, line: int | None, field: str | None
) -> None:
    path = home / "models" / "custom-models.json"
    path.parent.mkdir()
    path.write_text(text)
    r = dexto("models", "add", "--provider", "ollama", "--name", "llama3")
    assert r.returncode == 2
    assert str(path) in r.stderr and "fix:" in r.stderr
    if line is not None:
        assert f"{path}:{line}" in r.stderr
    if field is not None:
        assert field in r.stderr
    assert "sk-RAW" not in r.stderr
    assert path.read_text() == text
    if field is not None and field.startswith("models[0]"):
        provider = json.loads(text)["models"][0]["provider"]
        # The fix names the command that repairs the entry, and that command works.
        assert f"`dexto models remove m --provider {provider}`" in r.stderr
        repaired = dexto("models", "remove", "m", "--provider", provider)
        assert repaired.returncode == 0, repaired.stderr
        assert json.loads(path.read_text())["models"] == []
    else:
        assert dexto("models", "remove", "m").returncode == 2
        assert path.read_text() == text


_ADDER = """
import subprocess, sys
for i in range(int(sys.argv[2])):
    subprocess.run([sys.executable, "-m", "dexto.cli.main", "models", "add", "--provider",
                    "ollama", "--name", f"{sys.argv[1]}-{i}"], check=True,
                   stdout=subprocess.DEVNULL)
"""


def test_concurrent_adds_from_several_processes(home: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _ADDER, f"w{w}", "4"], env=cli_env())
        for w in range(5)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 5
    names = sorted(str(m["name"]) for m in _models(home))
    assert names == sorted(f"w{w}-{i}" for w in range(5) for i in range(4))


def test_agent_yaml_may_declare_custom_models(dexto: Run, home: Path) -> None:
    assert (
        dexto(
            "models",
            "add",
            "--provider",
            "openai-compatible",
            "--name",
            "shared",
            "--base-url",
            "http://local-file:1/v1",
        ).returncode
        == 0
    )
    agent = home / "agent.yml"
    agent.write_text(
        "llm:\n  provider: openai-compatible\n  model: shared\n  customModels:\n"
        "    - {name: shared, provider: openai-compatible, "
        "baseURL: 'http://from-agent:2/v1'}\n"
    )
    r = dexto("route", "--agent", str(agent), "--json")
    assert r.returncode == 0, r.stdout
    assert json.loads(r.stdout)["baseURL"] == "http://from-agent:2/v1"  # the agent's wins


def test_a_backup_of_a_file_holding_a_raw_key_is_readable_by_its_owner_only(
    dexto: Run, home: Path
) -> None:
    """A hand-edited custom-models.json (0644) with a raw key in an entry (invalid: kept as it
    is): `models remove` of that entry writes the file without it and backs up the old one —
    which still holds the key, so the backup is 0600 whatever the original's mode."""
    path = home / "models" / "custom-models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "models": [
            {"provider": "openai-compatible", "name": "leaky", "baseURL": "http://h/v1",
             "apiKey": RAW_KEY},
            {"provider": "openai-compatible", "name": "fine", "baseURL": "http://h/v1"},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    path.chmod(0o644)
    r = dexto("models", "remove", "--provider", "openai-compatible", "leaky")
    assert r.returncode == 0, r.stderr
    assert RAW_KEY not in path.read_text()
    (backup,) = path.parent.glob("custom-models.json.*.bak")
    assert RAW_KEY in backup.read_text() and file_mode(backup) == 0o600
