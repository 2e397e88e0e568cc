"""Custom-model key references, passwords in URLs, pasted keys that cannot be sent, and URLs
with a bad port, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dexto.cli.custom_models_cmd import reference_name
from tests._http import ModelsServer
from tests.cli.conftest import Run

OC = ["models", "add", "--provider", "openai-compatible"]
CMDS = [["whoami"], ["login", "--api-key", "dxk_abc"], ["chat", "openai/gpt-4o", "-m", "hi"]]


def _write_model(home: Path, name: str, base_url: str, *, api_key_ref: str | None = None) -> None:
    """A models file holding one openai-compatible model, as a user or an older dexto wrote it."""
    entry = {"name": name, "provider": "openai-compatible", "baseURL": base_url}
    if api_key_ref is not None:
        entry["apiKeyRef"] = api_key_ref
    (home / "models").mkdir()
    (home / "models/custom-models.json").write_text(json.dumps({"version": 1, "models": [entry]}))


def _no_traceback(r: object) -> None:
    assert "Traceback" not in getattr(r, "stdout", "") + getattr(r, "stderr", "")


@pytest.mark.parametrize(("first", "second"), [("Foo", "foo"), ("org/m", "org-m")])
def test_names_differing_in_case_or_slash_keep_their_own_keys(
    dexto: Run, isolated_env: Path, first: str, second: str
) -> None:
    a = dexto(*OC, "--name", first, "--base-url", "http://a.example/v1", "--api-key", "sk-KEYA")
    b = dexto(*OC, "--name", second, "--base-url", "http://b.example/v1", "--api-key", "sk-KEYB")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    refs = [
        m["apiKeyRef"]
        for m in json.loads((isolated_env / "models/custom-models.json").read_text())["models"]
    ]
    assert refs[0] != refs[1]
    auth = json.loads((isolated_env / "auth.json").read_text())
    assert (auth[refs[0]]["key"], auth[refs[1]]["key"]) == ("sk-KEYA", "sk-KEYB")
    route = json.loads(dexto("route", f"openai-compatible/{first}", "--json").stdout)
    assert route["baseURL"] == "http://a.example/v1"
    assert route["credentialSource"] == f"auth-store:{refs[0]}"


def test_a_reference_used_by_another_model_is_refused(dexto: Run, isolated_env: Path) -> None:
    ref = reference_name("openai-compatible", "bar")
    _write_model(isolated_env, "other", "http://a.example/v1", api_key_ref=ref)
    r = dexto(
        *OC,
        "--name",
        "bar",
        "--base-url",
        "http://b.example/v1",
        "--api-key",
        "sk-NEWKEY",
        "--json",
    )
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "INVALID_CONFIG" and "openai-compatible/other" in err["message"]
    assert "sk-NEWKEY" not in r.stdout + r.stderr
    assert not (isolated_env / "auth.json").exists()


def test_replace_with_a_new_reference_removes_the_old_stored_key(
    dexto: Run, isolated_env: Path
) -> None:
    old = "custom-openai-compatible-foo"
    _write_model(isolated_env, "Foo", "http://a.example/v1", api_key_ref=old)
    (isolated_env / "auth.json").write_text(
        json.dumps({old: {"type": "api", "key": "sk-OLDKEY"}}), "utf-8"
    )
    (isolated_env / "auth.json").chmod(0o600)
    route = json.loads(dexto("route", "openai-compatible/Foo", "--json").stdout)
    assert route["credentialSource"] == f"auth-store:{old}"  # stored data keeps working
    r = dexto(
        *OC,
        "--name",
        "Foo",
        "--base-url",
        "http://a.example/v1",
        "--api-key",
        "sk-NEW",
        "--replace",
    )
    assert r.returncode == 0, r.stderr
    auth = json.loads((isolated_env / "auth.json").read_text())
    assert old not in auth and auth[reference_name("openai-compatible", "Foo")]["key"] == "sk-NEW"


def test_a_password_in_a_custom_base_url_is_never_printed(dexto: Run) -> None:
    url = "http://bob:sk-SECRETPW123@127.0.0.1:9/v1"
    added = dexto(*OC, "--name", "m1", "--base-url", url, "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["model"]["baseURL"] == "http://bob:***@127.0.0.1:9/v1"
    runs = [
        dexto("route", "openai-compatible/m1"),
        dexto("route", "openai-compatible/m1", "--json"),
        dexto("models", "--json"),
    ]
    chat = dexto("chat", "openai-compatible/m1", "-m", "hi")
    for r in [added, *runs, chat]:
        assert "SECRETPW" not in r.stdout + r.stderr
        _no_traceback(r)
    assert "bob:***@127.0.0.1:9" in runs[0].stdout
    assert (
        chat.returncode != 0
        and "could not reach OpenAI-compatible at http://bob:***@" in chat.stderr
    )
    assert "OPENAI_COMPATIBLE_BASE_URL" not in chat.stderr
    assert "custom model openai-compatible/m1" in chat.stderr


@pytest.mark.parametrize(
    "cmd", [["whoami"], ["login", "--api-key", "dxk_abc"], ["chat", "openai/gpt-4o", "-m", "hi"]]
)
def test_a_password_in_the_gateway_url_is_never_printed(dexto: Run, cmd: list[str]) -> None:
    env = {"DEXTO_GATEWAY_URL": "http://u:gwSECRETpw@127.0.0.1:9", "DEXTO_API_KEY": "dxk_abc"}
    r = dexto(*cmd, env=env)
    assert r.returncode != 0
    assert "gwSECRETpw" not in r.stdout + r.stderr
    assert "http://u:***@127.0.0.1:9" in r.stderr
    _no_traceback(r)


PASTED = "sk-proj-abc…xyz"


def test_non_ascii_keys_are_refused_at_input_without_echoing_them(
    dexto: Run, isolated_env: Path
) -> None:
    runs = [
        dexto("auth", "set", "openai", input=PASTED + "\n"),
        dexto("login", "--api-key", "dxk_abc…xyz"),
        dexto(*OC, "--name", "m1", "--base-url", "http://a.example/v1", "--api-key", PASTED),
    ]
    for r in runs:
        assert r.returncode == 2 and "non-ASCII" in r.stderr
        assert "abc…xyz" not in r.stdout + r.stderr
        _no_traceback(r)
    assert not (isolated_env / "auth.json").exists()


def test_unsendable_keys_from_env_or_store_are_typed_errors_naming_the_source(
    dexto: Run, isolated_env: Path
) -> None:
    whoami = dexto("whoami", env={"DEXTO_API_KEY": "dxk_abc…xyz"})
    chat = dexto(
        "chat", "openai/gpt-4o", "-m", "hi", "--prefer", "direct", env={"OPENAI_API_KEY": PASTED}
    )
    (isolated_env / "auth.json").write_text(
        json.dumps({"openai": {"type": "api", "key": PASTED}}), "utf-8"
    )
    (isolated_env / "auth.json").chmod(0o600)
    stored = dexto("chat", "openai/gpt-4o", "-m", "hi")
    for r, source in [
        (whoami, "env:DEXTO_API_KEY"),
        (chat, "env:OPENAI_API_KEY"),
        (stored, "auth-store:openai"),
    ]:
        assert r.returncode == 2 and source in r.stderr, r.stderr
        assert "abc…xyz" not in r.stdout + r.stderr
        _no_traceback(r)
    assert "dexto auth set openai" in stored.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:notaport", "http://[::1"])
@pytest.mark.parametrize(
    "cmd", [["whoami"], ["login", "--api-key", "dxk_abc"], ["chat", "openai/gpt-4o", "-m", "hi"]]
)
def test_a_gateway_url_with_a_bad_port_is_a_typed_error(
    dexto: Run, url: str, cmd: list[str]
) -> None:
    r = dexto(*cmd, env={"DEXTO_GATEWAY_URL": url, "DEXTO_API_KEY": "dxk_abc"})
    assert r.returncode == 2 and "DEXTO_GATEWAY_URL" in r.stderr, r.stderr
    _no_traceback(r)


def test_a_custom_base_url_with_a_bad_port_is_refused_at_add_and_reported_at_use(
    dexto: Run, isolated_env: Path
) -> None:
    r = dexto(*OC, "--name", "m2", "--base-url", "http://localhost:notaport/v1", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["message"].startswith("--base-url: ")
    assert not (isolated_env / "models/custom-models.json").exists()
    _write_model(isolated_env, "m3", "http://localhost:notaport/v1")
    chat = dexto("chat", "openai-compatible/m3", "-m", "hi")
    assert chat.returncode == 2 and "custom model openai-compatible/m3" in chat.stderr, chat.stderr
    _no_traceback(chat)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:mkSECRETpw@127.0.0.1:9/api/v1/models", "http://u:***@127.0.0.1:9/api/v1/models"),
        (
            "http://127.0.0.1:9/api/v1/models?api_key=mkSECRETpw",
            "http://127.0.0.1:9/api/v1/models?api_key=***",
        ),
        (
            "http://u:mkSECRETpw@127.0.0.1:notaport/v1/models",
            "http://u:***@127.0.0.1:notaport/v1/models",
        ),
    ],
)
def test_a_secret_in_the_models_url_is_never_printed_or_stored(
    dexto: Run, isolated_env: Path, url: str, shown: str
) -> None:
    env = {"DEXTO_OPENROUTER_MODELS_URL": url}
    text = dexto("models", "--refresh", env=env)
    as_json = dexto("models", "--refresh", "--json", env=env)
    quiet = dexto("models", "--json", env=env)  # a failed refresh is not printed here
    assert text.returncode == 2 and f"list from {shown}: " in text.stderr, text.stderr
    err = json.loads(as_json.stdout)["error"]
    assert err["code"] == "MARKETPLACE_UNAVAILABLE" and f"list from {shown}: " in err["message"]
    assert quiet.returncode == 0
    for r in (text, as_json, quiet):
        assert "mkSECRETpw" not in r.stdout + r.stderr
        _no_traceback(r)
    stored = "".join(p.read_text() for p in isolated_env.rglob("*") if p.is_file())
    assert "mkSECRETpw" not in stored and shown in stored


def test_a_secret_in_a_working_models_url_is_not_stored(
    dexto: Run, isolated_env: Path, models_server: ModelsServer
) -> None:
    url = models_server.url.replace("http://", "http://u:mkSECRETpw@") + "?token=mkSECRETpw"
    r = dexto("models", "--refresh", "--json", env={"DEXTO_OPENROUTER_MODELS_URL": url})
    assert r.returncode == 0 and models_server.hits == 1, r.stderr
    assert "mkSECRETpw" not in r.stdout + r.stderr
    cache = (isolated_env / "cache/openrouter-models.json").read_text()
    assert "mkSECRETpw" not in cache and "http://u:***@127.0.0.1:" in cache


BEDROCK = "bedrock/anthropic.claude-3-haiku-20240307-v1:0"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-access-key",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.mark.parametrize(
    ("url", "code", "shown"),
    [
        (
            "http://u:bdSECRETpw@127.0.0.1:9/?X-Amz-Security-Token=bdSECRETpw",
            "UPSTREAM_ERROR",
            "could not reach Amazon Bedrock at http://u:***@127.0.0.1:9/?X-Amz-Security-Token=***",
        ),
        (
            "http://u:bdSECRETpw@127.0.0.1:notaport",
            "INVALID_CONFIG",
            "Amazon Bedrock at http://u:***@127.0.0.1:notaport is not valid",
        ),
    ],
)
def test_a_secret_in_the_bedrock_base_url_is_never_printed(
    dexto: Run, url: str, code: str, shown: str
) -> None:
    pytest.importorskip("boto3")
    env = {**AWS, "BEDROCK_BASE_URL": url}
    text = dexto("chat", BEDROCK, "-m", "hi", env=env)
    as_json = dexto("chat", BEDROCK, "-m", "hi", "--json", env=env)
    assert text.returncode == 2 and shown in text.stderr, text.stderr
    assert "fix: " in text.stderr and "BEDROCK_BASE_URL" in text.stderr
    err = json.loads(as_json.stdout)["error"]
    assert err["code"] == code and shown in err["message"] and "BEDROCK_BASE_URL" in err["fix"]
    for r in (text, as_json):
        assert "bdSECRETpw" not in r.stdout + r.stderr
        _no_traceback(r)


def test_a_key_reference_an_older_dexto_generated_for_two_models_is_a_warning(
    dexto: Run, isolated_env: Path
) -> None:
    old = "custom-openai-compatible-foo"  # the slug-only reference: Foo and foo both got it
    entries = [
        {
            "name": n,
            "provider": "openai-compatible",
            "baseURL": "http://a.example/v1",
            "apiKeyRef": r,
        }
        for n, r in [("Foo", old), ("foo", old), ("x", "team"), ("y", "team")]
    ]
    (isolated_env / "models").mkdir()
    (isolated_env / "models/custom-models.json").write_text(
        json.dumps({"version": 1, "models": entries})
    )
    (isolated_env / "auth.json").write_text(
        json.dumps(
            {old: {"type": "api", "key": "sk-OLDKEY"}, "team": {"type": "api", "key": "sk-T"}}
        )
    )
    (isolated_env / "auth.json").chmod(0o600)
    for args in (["models", "--offline"], ["models", "--offline", "--json"]):
        r = dexto(*args)
        assert r.returncode == 0, r.stderr
        warnings = [w for w in r.stderr.splitlines() if w.startswith("warning: ")]
        assert len(warnings) == 1, r.stderr  # a reference the user named may be shared
        assert "openai-compatible/Foo, openai-compatible/foo" in warnings[0] and old in warnings[0]
        assert "dexto models add --provider openai-compatible --name Foo" in warnings[0]
        assert "--api-key - --replace" in warnings[0]
        assert "sk-OLDKEY" not in r.stdout + r.stderr
        _no_traceback(r)
        if "--json" in args:
            assert json.loads(r.stdout)["providers"]["openai-compatible"]["models"]
    fixed = dexto(
        *OC,
        "--name",
        "Foo",
        "--base-url",
        "http://a.example/v1",
        "--api-key",
        "-",
        "--replace",
        input="sk-FOOKEY\n",
    )
    assert fixed.returncode == 0, fixed.stderr
    after = dexto("models", "--offline")
    assert after.returncode == 0 and "warning: " not in after.stderr, after.stderr
    route = json.loads(dexto("route", "openai-compatible/Foo", "--json").stdout)
    assert route["credentialSource"] == f"auth-store:{reference_name('openai-compatible', 'Foo')}"
    route = json.loads(dexto("route", "openai-compatible/foo", "--json").stdout)
    assert route["credentialSource"] == f"auth-store:{old}"  # the other model keeps the old key
