"""The ordered credential lookup, SPEC §4."""

from pathlib import Path

import pytest

from dexto.auth.credentials import (
    CredentialSnapshot,
    dexto_credential,
    direct_credential,
    resolve_reference,
)
from dexto.auth.store import parse_auth_store, read_auth_store
from dexto.errors import ConfigError
from dexto.llm.providers import get_provider

STORE = parse_auth_store(
    '{"dexto": {"type": "api", "key": "dxk_store"},'
    ' "anthropic": {"type": "api", "key": "sk-store"},'
    ' "openai": {"type": "oauth", "access": "acc", "refresh": "ref", "expires": 0},'
    ' "glama": {"type": "wellknown", "key": "GLAMA", "token": "tok"}}',
    file="auth.json",
)


@pytest.mark.parametrize(
    "env,store,expected",
    [
        ({"DEXTO_API_KEY": "dxk_env"}, STORE, "env:DEXTO_API_KEY"),
        ({}, STORE, "auth-store:dexto"),
        ({"DEXTO_API_KEY": "  "}, {}, None),
    ],
)
def test_dexto_key_order(env: dict[str, str], store: dict, expected: str | None) -> None:
    cred = dexto_credential(env, store)
    assert (cred.source if cred else None) == expected


@pytest.mark.parametrize(
    "provider,env,override,expected",
    [
        ("anthropic", {"ANTHROPIC_API_KEY": "a"}, None, "env:ANTHROPIC_API_KEY"),
        ("anthropic", {}, None, "auth-store:anthropic"),
        ("anthropic", {"MY_KEY": "m", "ANTHROPIC_API_KEY": "a"}, "$MY_KEY", "env:MY_KEY"),
        ("anthropic", {"ANTHROPIC_API_KEY": "a"}, "${UNSET_VAR}", None),  # never falls through
        ("litellm", {"LITELLM_API_KEY": "l"}, "$UNSET_VAR", None),
        ("google", {"GEMINI_API_KEY": "g"}, None, "env:GEMINI_API_KEY"),
        (
            "google",
            {"GOOGLE_API_KEY": "g", "GOOGLE_GENERATIVE_AI_API_KEY": "c"},
            None,
            "env:GOOGLE_GENERATIVE_AI_API_KEY",
        ),
        ("openai", {}, None, "auth-store:openai"),
        ("glama", {}, None, "auth-store:glama"),
        ("groq", {}, None, None),
        ("bedrock", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, None, None),
        (
            "bedrock",
            {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "eu"},
            None,
            "env:AWS_ACCESS_KEY_ID+AWS_REGION",
        ),
        (
            "bedrock",
            {"AWS_PROFILE": "p", "AWS_DEFAULT_REGION": "eu"},
            None,
            "env:AWS_PROFILE+AWS_DEFAULT_REGION",
        ),
        ("vertex", {"GOOGLE_VERTEX_PROJECT": "proj"}, None, "env:GOOGLE_VERTEX_PROJECT+adc"),
        ("vertex", {}, None, None),
        ("ollama", {}, None, "none-required"),
        ("local", {}, None, "none-required"),
        ("litellm", {"LITELLM_API_KEY": "l"}, None, "env:LITELLM_API_KEY"),
        ("litellm", {}, None, "none-required"),
    ],
)
def test_direct_lookup_order(
    provider: str, env: dict[str, str], override: str | None, expected: str | None
) -> None:
    cred = direct_credential(get_provider(provider), env, STORE, override)
    assert (cred.source if cred else None) == expected


def test_secrets_are_wrapped_and_hidden() -> None:
    cred = direct_credential(get_provider("openai"), {}, STORE)
    assert cred is not None and cred.secret is not None
    assert cred.secret.reveal() == "acc"
    assert "acc" not in repr(cred) and "acc" not in str(cred.secret)
    assert "sk-store" not in repr(STORE)
    ref = resolve_reference("$MY_KEY", {"MY_KEY": "zzz"})
    assert ref is not None and "zzz" not in repr(ref)


def test_snapshot_has_names_only() -> None:
    snap = CredentialSnapshot.build({"DEXTO_API_KEY": "dxk_secret"}, STORE)
    assert snap.has_dexto and snap.dexto_source == "env:DEXTO_API_KEY"
    assert snap.direct_source("anthropic") == "auth-store:anthropic"
    assert "dxk_secret" not in repr(snap)


@pytest.mark.parametrize(
    "text,field",
    [
        ("{not json", None),
        ('{"anthropic": {"type": "api"}}', "anthropic"),
        ('{"anthropic": {"type": "magic", "key": "k"}}', "anthropic"),
        ('{"anthropic": {"type": "api", "key": "sk-secret-123", "extra": 1}}', "anthropic"),
    ],
)
def test_corrupt_store_is_a_typed_error_without_secret(
    tmp_path: Path, text: str, field: str | None
) -> None:
    path = tmp_path / "auth.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_auth_store(path)
    assert str(path) in e.value.message and e.value.fix
    assert "sk-secret-123" not in str(e.value)
    if field:
        assert e.value.field is not None and e.value.field.startswith(field)
    assert path.read_text() == text  # never rewritten


def test_wide_permissions_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "auth.json"
    path.write_text('{"dexto": {"type": "api", "key": "dxk_1"}}')
    path.chmod(0o644)
    assert "dexto" in read_auth_store(path)
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
