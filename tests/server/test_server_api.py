"""The agent server's API through a real running ``dexto serve`` (subprocess, loopback)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from dexto.config.paths import DextoPaths
from dexto.llm.marketplace import write_cache
from tests._samples import SAMPLE_ROWS
from tests.server._serve import DEXTO, DEXTO_ONLY, error_code
from tests.server.conftest import StartServer


def cli_json(*args: str, env: dict[str, str], home: Path) -> object:
    full = {**os.environ, "DEXTO_HOME": str(home), **env}
    out = subprocess.run(
        [DEXTO, *args, "--json"], env=full, capture_output=True, text=True, timeout=60
    )
    return json.loads(out.stdout)


# --- catalog ---------------------------------------------------------------------------------


def test_catalog_is_exactly_the_cli_answer(serve: StartServer, isolated_env: Path) -> None:
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    s = serve(DEXTO_ONLY)
    resp = s.get("/llm/catalog")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == cli_json("models", env=DEXTO_ONLY, home=isolated_env)


def test_catalog_with_only_dexto_key_serves_openrouter_as_marketplace(serve: StartServer) -> None:
    cat = serve(DEXTO_ONLY).get("/llm/catalog").json()
    assert "dexto" not in cat["providers"]
    orr = cat["providers"]["openrouter"]
    assert orr["name"] == "Dexto Marketplace"
    assert orr["hasEffectiveCredentials"] is True and orr["effectiveRoute"] == "dexto"
    assert cat["auth"] == {"hasDextoKey": True, "preferDextoCredits": True}


def test_catalog_search_and_provider_match_cli(serve: StartServer, isolated_env: Path) -> None:
    s = serve(DEXTO_ONLY)
    got = s.get("/llm/catalog", params={"search": "sonnet"}).json()
    assert got == cli_json("models", "--search", "sonnet", env=DEXTO_ONLY, home=isolated_env)
    only = s.get("/llm/catalog", params={"provider": "groq"}).json()
    assert list(only["providers"]) == ["groq"]
    assert error_code(s.get("/llm/catalog", params={"provider": "dexto"})) == "PROVIDER_NOT_ALLOWED"
    assert s.get("/llm/catalog", params={"provider": "nope"}).status_code == 400


def test_catalog_follows_files_changed_by_other_processes(
    serve: StartServer, isolated_env: Path
) -> None:
    s = serve()
    assert s.get("/llm/catalog").json()["providers"]["anthropic"]["hasDirectKey"] is False
    auth = isolated_env / "auth.json"
    auth.write_text(json.dumps({"anthropic": {"type": "api", "key": "sk-ant-test-123"}}))
    auth.chmod(0o600)
    assert s.get("/llm/catalog").json()["providers"]["anthropic"]["hasDirectKey"] is True


# --- current / switch ------------------------------------------------------------------------


def test_current_carries_the_route_json(serve: StartServer, isolated_env: Path) -> None:
    s = serve(DEXTO_ONLY)
    cur = s.get("/llm/current").json()
    assert cur["provider"] == "anthropic" and cur["model"] == "claude-sonnet-4-5-20250929"
    assert cur["error"] is None and cur["creditsRemaining"] is None
    route = cli_json("route", "--agent", str(s.agent), env=DEXTO_ONLY, home=isolated_env)
    assert cur["decision"] == route
    assert cur["decision"]["route"] == "dexto"


def test_current_without_credentials_reports_the_fix(serve: StartServer) -> None:
    resp = serve().get("/llm/current")
    assert resp.status_code == 200
    cur = resp.json()
    assert cur["decision"] is None
    assert cur["error"]["code"] == "NO_CREDENTIALS"
    assert "dexto login" in cur["error"]["fix"] and "ANTHROPIC_API_KEY" in cur["error"]["fix"]


def test_current_prefer_override(serve: StartServer) -> None:
    s = serve({**DEXTO_ONLY, "ANTHROPIC_API_KEY": "sk-ant-test-123"})
    assert s.get("/llm/current").json()["decision"]["route"] == "dexto"
    assert (
        s.get("/llm/current", params={"prefer": "direct"}).json()["decision"]["route"] == "direct"
    )
    assert s.get("/llm/current", params={"prefer": "dexto2"}).status_code == 400


def test_switch_persists_with_comments_and_backup(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    before = s.agent.read_text()
    resp = s.post("/llm/switch", json={"provider": "openai", "model": "gpt-5-mini"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["provider"], body["model"]) == ("openai", "gpt-5-mini")
    assert body["decision"]["route"] == "dexto"
    after = s.agent.read_text()
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert changed == [
        (
            '  provider: anthropic   # semantic provider, never "dexto"',
            '  provider: openai   # semantic provider, never "dexto"',
        ),
        ("  model: claude-sonnet-4-5-20250929   # native ID", "  model: gpt-5-mini   # native ID"),
    ]
    backups = list(s.agent.parent.glob("demo-agent.yml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == before
    assert s.get("/llm/current").json()["model"] == "gpt-5-mini"


def test_switch_to_marketplace_id_keeps_it_exactly(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    resp = s.post("/llm/switch", json={"provider": "openrouter", "model": "z-ai/glm-4.5-air:free"})
    assert resp.status_code == 200
    assert resp.json()["decision"]["effectiveModel"] == "z-ai/glm-4.5-air:free"
    assert "model: z-ai/glm-4.5-air:free" in s.agent.read_text()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": "dexto", "model": "anthropic/claude-sonnet-4.5"}, "PROVIDER_NOT_ALLOWED"),
        ({"provider": "nope", "model": "x"}, "UNKNOWN_PROVIDER"),
        ({"provider": "anthropic", "model": "bad id"}, "INVALID_MODEL_ID"),
        ({"provider": "anthropic", "model": ""}, "INVALID_MODEL_ID"),
        ({"provider": "anthropic"}, "INVALID_REQUEST"),
        ({"provider": "anthropic", "model": "x", "extra": 1}, "INVALID_REQUEST"),
        ({"provider": 5, "model": "x"}, "INVALID_REQUEST"),
    ],
)
def test_switch_refusals_leave_the_file_untouched(
    serve: StartServer, body: dict[str, object], code: str
) -> None:
    s = serve(DEXTO_ONLY)
    before = s.agent.read_bytes()
    resp = s.post("/llm/switch", json=body)
    assert resp.status_code == 400
    assert error_code(resp) == code
    assert s.agent.read_bytes() == before
    assert not list(s.agent.parent.glob("*.bak"))


def test_switch_dexto_message_names_the_fix(serve: StartServer) -> None:
    resp = serve(DEXTO_ONLY).post("/llm/switch", json={"provider": "dexto", "model": "x"})
    err = resp.json()["error"]
    assert "dexto login" in err["fix"]


def test_switch_rejects_bad_json_and_wrong_media(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    bad = s.post("/llm/switch", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and error_code(bad) == "INVALID_REQUEST"
    form = s.post(
        "/llm/switch",
        content=b"provider=openai",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415 and error_code(form) == "UNSUPPORTED_MEDIA_TYPE"


def test_switch_clears_provider_specific_key_reference(
    serve: StartServer, agent_file: Path
) -> None:
    agent_file.write_text(
        agent_file.read_text().replace(
            "  routing:", "  apiKey: $ANTHROPIC_API_KEY   # reference only\n  routing:"
        )
    )
    s = serve(DEXTO_ONLY)
    assert s.post("/llm/switch", json={"provider": "openai", "model": "gpt-5"}).status_code == 200
    text = s.agent.read_text()
    assert "$ANTHROPIC_API_KEY" not in text and "# reference only" in text


# --- custom models ---------------------------------------------------------------------------


def test_custom_model_lifecycle(serve: StartServer, isolated_env: Path) -> None:
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    s = serve(DEXTO_ONLY)
    resp = s.post(
        "/llm/custom-models", json={"provider": "openrouter", "name": "z-ai/glm-4.5-air:free"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["validation"] == "known" and resp.json()["replaced"] is False
    listed = s.get("/llm/custom-models").json()
    assert [m["name"] for m in listed["models"]] == ["z-ai/glm-4.5-air:free"]
    assert listed["models"][0]["origin"] == "local"
    orr = s.get("/llm/catalog").json()["providers"]["openrouter"]
    assert orr["hasEffectiveCredentials"]
    assert any(m["id"] == "z-ai/glm-4.5-air:free" and m["custom"] for m in orr["models"])
    assert s.delete("/llm/custom-models/z-ai/glm-4.5-air:free").status_code == 204
    gone = s.delete("/llm/custom-models/z-ai/glm-4.5-air:free")
    assert gone.status_code == 404 and error_code(gone) == "NOT_FOUND"
    assert s.get("/llm/custom-models").json()["models"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": "dexto", "name": "anthropic/claude-sonnet-4.5"}, "PROVIDER_NOT_ALLOWED"),
        ({"provider": "anthropic", "name": "claude-x"}, "UNKNOWN_PROVIDER"),
        ({"provider": "openai-compatible", "name": "my-model"}, "INVALID_CONFIG"),
        ({"provider": "openrouter", "name": "a/b", "apiKey": "sk-secret-raw"}, "INVALID_CONFIG"),
        ({"provider": "openrouter", "name": "bad id"}, "INVALID_CONFIG"),
        ({"provider": "openrouter", "name": "a/b", "surprise": True}, "INVALID_CONFIG"),
    ],
)
def test_custom_model_refusals_store_nothing(
    serve: StartServer, isolated_env: Path, body: dict[str, object], code: str
) -> None:
    s = serve(DEXTO_ONLY)
    resp = s.post("/llm/custom-models", json=body)
    assert resp.status_code == 400
    assert error_code(resp) == code
    assert "sk-secret-raw" not in resp.text
    assert not DextoPaths(isolated_env).custom_models.exists()


def test_custom_model_with_base_url(serve: StartServer) -> None:
    s = serve()
    resp = s.post(
        "/llm/custom-models",
        json={
            "provider": "openai-compatible",
            "name": "qwen3",
            "baseURL": "http://127.0.0.1:8000/v1",
        },
    )
    assert resp.status_code == 201
    assert resp.json()["validation"] is None
    prov = s.get("/llm/catalog").json()["providers"]["openai-compatible"]
    assert prov["hasEffectiveCredentials"]
    assert [m["baseURL"] for m in prov["models"] if m["custom"]] == ["http://127.0.0.1:8000/v1"]


def test_custom_models_may_name_the_same_stored_key(serve: StartServer) -> None:
    """An ``apiKeyRef`` the user names may be shared (two models on one server, one key); only a
    reference `dexto models add --api-key` makes for a model's own key must be unique."""
    s = serve()
    for name in ("qwen3", "llama3"):
        resp = s.post(
            "/llm/custom-models",
            json={
                "provider": "openai-compatible",
                "name": name,
                "baseURL": "http://127.0.0.1:8000/v1",
                "apiKeyRef": "my-vllm-key",
            },
        )
        assert resp.status_code == 201, resp.text
    models = s.get("/llm/custom-models").json()["models"]
    assert sorted((m["name"], m["apiKeyRef"]) for m in models) == [
        ("llama3", "my-vllm-key"),
        ("qwen3", "my-vllm-key"),
    ]


# --- validate --------------------------------------------------------------------------------


def test_validate_known_unknown_unverified(serve: StartServer, isolated_env: Path) -> None:
    s = serve(DEXTO_ONLY)

    def status(provider: str, model: str) -> str:
        resp = s.get("/llm/validate", params={"provider": provider, "model": model})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["status"])

    assert status("openrouter", "z-ai/glm-4.5-air:free") == "known"  # the bundled snapshot
    write_cache(DextoPaths(isolated_env), SAMPLE_ROWS)
    assert status("openrouter", "z-ai/glm-4.5-air:free") == "known"
    assert status("openrouter", "z-ai/glm-9-imaginary") == "unknown"
    assert status("anthropic", "claude-sonnet-4-5-20250929") == "known"
    assert status("anthropic", "claude-next") == "unverified"
    bad = s.get("/llm/validate", params={"provider": "dexto", "model": "x"})
    assert bad.status_code == 400 and error_code(bad) == "PROVIDER_NOT_ALLOWED"
    assert (
        error_code(s.get("/llm/validate", params={"provider": "openrouter", "model": "a b"}))
        == "INVALID_MODEL_ID"
    )
    assert (
        error_code(s.get("/llm/validate", params={"provider": "openrouter"})) == "INVALID_REQUEST"
    )


# --- provider keys ---------------------------------------------------------------------------


def test_store_key_never_echoes_and_is_0600(serve: StartServer, isolated_env: Path) -> None:
    s = serve()
    secret = "sk-ant-api03-SECRETSECRET"
    resp = s.post("/llm/keys", json={"provider": "anthropic", "key": secret})
    assert resp.status_code == 200, resp.text
    assert secret not in resp.text
    body = resp.json()
    assert body["source"] == "auth-store:anthropic"
    assert body["state"]["hasEffectiveCredentials"] and body["state"]["effectiveRoute"] == "direct"
    auth = isolated_env / "auth.json"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert json.loads(auth.read_text())["anthropic"] == {"type": "api", "key": secret}
    cat = s.get("/llm/catalog")
    assert secret not in cat.text
    assert cat.json()["providers"]["anthropic"]["credentialSources"]["direct"] is True
    assert secret not in s.get("/llm/current").text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": "dexto", "key": "dxk_0123456789"}, "PROVIDER_NOT_ALLOWED"),
        ({"provider": "bedrock", "key": "AKIA0123456789"}, "INVALID_REQUEST"),
        ({"provider": "nope", "key": "0123456789"}, "UNKNOWN_PROVIDER"),
        ({"provider": "openai", "key": "short"}, "INVALID_REQUEST"),
        ({"provider": "openai", "key": "sk-has space-SECRET"}, "INVALID_REQUEST"),
        ({"provider": "openai", "key": "sk-ok-0123456789", "more": 1}, "INVALID_REQUEST"),
    ],
)
def test_store_key_refusals(
    serve: StartServer, isolated_env: Path, body: dict[str, object], code: str
) -> None:
    resp = serve().post("/llm/keys", json=body)
    assert resp.status_code == 400 and error_code(resp) == code
    assert str(body["key"]) not in resp.text
    assert not (isolated_env / "auth.json").exists()


# --- chat (pre-flight only; streaming end-to-end lives with the browser/e2e tests) ----------


def test_chat_without_credentials_is_a_typed_409(serve: StartServer) -> None:
    resp = serve().post("/llm/chat", json={"prompt": "hi"})
    assert resp.status_code == 409 and error_code(resp) == "NO_CREDENTIALS"


def test_chat_body_is_validated(serve: StartServer) -> None:
    s = serve(DEXTO_ONLY)
    for body in (
        {},
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {"prompt": ""},
        {"prompt": "hi", "prefer": "cheapest"},
    ):
        resp = s.post("/llm/chat", json=body)
        assert resp.status_code == 400 and error_code(resp) == "INVALID_REQUEST", body
