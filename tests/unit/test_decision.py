"""The routing decision, SPEC §6: table-driven over providers × credentials × policy, and the
invariants as properties."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dexto.config.paths import DextoPaths
from dexto.errors import ConfigError, DextoError, NoCredentialsError, ProviderNotAllowedError
from dexto.llm.context import build_context
from dexto.llm.marketplace import MarketplaceCatalog, parse_models
from dexto.llm.providers import PROVIDERS
from dexto.llm.registry import load_registry
from dexto.llm.routing import RoutingContext, decide, provider_state
from dexto.llm.selection import Selection, parse_selection
from tests._samples import SAMPLE_ROWS

CATALOG = MarketplaceCatalog(parse_models(SAMPLE_ROWS), "fresh")

DIRECT_ENV: dict[str, dict[str, str]] = {
    "anthropic": {"ANTHROPIC_API_KEY": "sk-ant"},
    "openai": {"OPENAI_API_KEY": "sk-oai"},
    "google": {"GEMINI_API_KEY": "g-key"},
    "groq": {"GROQ_API_KEY": "gsk"},
    "xai": {"XAI_API_KEY": "xai"},
    "cohere": {"COHERE_API_KEY": "co"},
    "openrouter": {"OPENROUTER_API_KEY": "sk-or"},
    "bedrock": {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "S", "AWS_REGION": "us-east-1"},
    "vertex": {"GOOGLE_VERTEX_PROJECT": "proj"},
    "glama": {"GLAMA_API_KEY": "gl"},
    "litellm": {"LITELLM_API_KEY": "ll"},
}
KEYLESS = {"ollama", "local", "openai-compatible", "litellm"}
BASE = {
    "OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:8000/v1",
    "LITELLM_BASE_URL": "http://127.0.0.1:4000",
}


def model_for(pid: str) -> str:
    default = load_registry().default(pid)
    if default is not None:
        return default.id
    return "z-ai/glm-4.5-air:free" if pid == "openrouter" else "my-model"


def make_ctx(
    tmp: Path,
    env: dict[str, str],
    *,
    prefs: str | None = None,
    prefer: str | None = None,
    store: str | None = None,
) -> RoutingContext:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    if prefs is not None:
        (home / "preferences.yml").write_text(prefs)
    if store is not None:
        (home / "auth.json").write_text(store)
        (home / "auth.json").chmod(0o600)
    ctx, _ = build_context(env=env, paths=DextoPaths(home), prefer=prefer, marketplace=CATALOG)
    return ctx


def expected_route(pid: str, has_dexto: bool, has_direct: bool, prefer: str) -> str | None:
    """SPEC §6 restated literally, as the oracle (dexto has no runtime for local GGUF files)."""
    if pid == "local":
        return None
    if not PROVIDERS[pid].routeable:
        return "direct" if has_direct else None
    if has_dexto and (not has_direct or prefer == "dexto"):
        return "dexto"
    return "direct" if has_direct else None


POLICIES = [  # (preferences.yml text, --prefer override, effective prefer)
    (None, None, "dexto"),
    ("preferDextoCredits: true\n", None, "dexto"),
    ("preferDextoCredits: false\n", None, "direct"),
    ("preferDextoCredits: false\n", "dexto", "dexto"),
    ("preferDextoCredits: true\n", "direct", "direct"),
]
CASES = list(itertools.product(PROVIDERS, ["none", "env", "store"], [False, True], POLICIES))


@pytest.mark.parametrize("pid,dexto,direct,policy", CASES)
def test_decision_table(
    tmp_path: Path, pid: str, dexto: str, direct: bool, policy: tuple[str | None, str | None, str]
) -> None:
    prefs, override, prefer = policy
    env = dict(BASE)
    if dexto == "env":
        env["DEXTO_API_KEY"] = "dxk_env"
    if direct:
        env.update(DIRECT_ENV.get(pid, {}))
    store = '{"dexto": {"type": "api", "key": "dxk_store"}}' if dexto == "store" else None
    ctx = make_ctx(tmp_path, env, prefs=prefs, prefer=override, store=store)
    has_direct = direct or pid in KEYLESS
    want = expected_route(pid, dexto != "none", has_direct, prefer)
    sel = Selection(pid, model_for(pid))
    state = provider_state(pid, ctx)
    assert state.effective_route == want
    assert state.has_effective_credentials == (want is not None)
    if want is None:
        with pytest.raises(ConfigError if pid == "local" else NoCredentialsError) as e:
            decide(sel, ctx)
        assert e.value.fix and ("GGUF" in e.value.fix) == (pid == "local")
        return
    d = decide(sel, ctx)
    assert d.route == want
    assert d.reason and d.reason.endswith(".")
    if want == "dexto":
        assert d.effective_provider == "dexto"
        assert d.credential_source == (
            "env:DEXTO_API_KEY" if dexto == "env" else "auth-store:dexto"
        )
        assert d.base_url == "https://api.dexto.ai/v1"
        assert (d.fallback is not None) == has_direct
        if d.fallback:
            assert (d.fallback.effective_provider, d.fallback.effective_model) == (pid, sel.model)
    else:
        assert d.effective_provider == pid and d.effective_model == sel.model
        assert d.fallback is None and d.mapping_verified


@pytest.mark.parametrize(
    "selection,env,route,effective,verified",
    [
        (
            "anthropic/claude-sonnet-4-5-20250929",
            {"DEXTO_API_KEY": "d"},
            "dexto",
            "anthropic/claude-sonnet-4.5",
            True,
        ),
        (
            "anthropic/claude-opus-9-20300101",
            {"DEXTO_API_KEY": "d"},
            "dexto",
            "anthropic/claude-opus-9",
            True,
        ),
        (
            "anthropic/claude-unknown-1",
            {"DEXTO_API_KEY": "d"},
            "dexto",
            "anthropic/claude-unknown-1",
            False,
        ),
        (
            "groq/llama-3.3-70b-versatile",
            {"DEXTO_API_KEY": "d"},
            "dexto",
            "meta-llama/llama-3.3-70b-instruct",
            True,
        ),
        (
            "openrouter/z-ai/glm-4.5-air:free",
            {"DEXTO_API_KEY": "d"},
            "dexto",
            "z-ai/glm-4.5-air:free",
            True,
        ),
        (
            "anthropic/claude-sonnet-4-5-20250929",
            {"ANTHROPIC_API_KEY": "k"},
            "direct",
            "claude-sonnet-4-5-20250929",
            True,
        ),
        (
            "openrouter/z-ai/glm-4.5-air:free",
            {"OPENROUTER_API_KEY": "k"},
            "direct",
            "z-ai/glm-4.5-air:free",
            True,
        ),
    ],
)
def test_translation_examples(
    tmp_path: Path, selection: str, env: dict[str, str], route: str, effective: str, verified: bool
) -> None:
    d = decide(parse_selection(selection), make_ctx(tmp_path, env))
    assert (d.route, d.effective_model, d.mapping_verified) == (route, effective, verified)
    if not verified:
        assert "unverified" in d.reason


def test_fallback_disabled_by_agent_policy(tmp_path: Path) -> None:
    from dexto.config.agent import load_agent_file

    agent = tmp_path / "agent.yml"
    agent.write_text(
        "llm:\n  provider: anthropic\n  model: claude-sonnet-4-5-20250929\n"
        "  routing:\n    fallbackOnInsufficientCredits: false\n"
    )
    env = {"DEXTO_API_KEY": "d", "ANTHROPIC_API_KEY": "k"}
    ctx, _ = build_context(env=env, agent=load_agent_file(agent), paths=DextoPaths(tmp_path))
    d = decide(parse_selection("anthropic/claude-sonnet-4-5-20250929"), ctx)
    assert d.route == "dexto" and d.fallback is None


def test_gateway_url_is_normalised(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8787", "http://127.0.0.1:8787/", "http://127.0.0.1:8787/v1"):
        ctx = make_ctx(tmp_path, {"DEXTO_API_KEY": "d", "DEXTO_GATEWAY_URL": url})
        d = decide(parse_selection("openai/gpt-5-mini"), ctx)
        assert d.base_url == "http://127.0.0.1:8787/v1"


# ---- invariants -------------------------------------------------------------------------------

model_ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40
)
provider_ids = st.one_of(
    st.sampled_from([*PROVIDERS, "dexto", "Anthropic", ""]), st.text(max_size=12)
)
cred_sets = st.fixed_dictionaries(
    {},
    optional={
        "DEXTO_API_KEY": st.just("dxk"),
        "ANTHROPIC_API_KEY": st.just("a"),
        "OPENROUTER_API_KEY": st.just("o"),
        "OPENAI_API_KEY": st.just("o"),
        "AWS_ACCESS_KEY_ID": st.just("a"),
        "AWS_SECRET_ACCESS_KEY": st.just("s"),
        "AWS_REGION": st.just("r"),
        "OPENAI_COMPATIBLE_BASE_URL": st.just("http://h:1/v1"),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    provider=provider_ids,
    model=model_ids,
    env=cred_sets,
    prefer=st.sampled_from([None, "dexto", "direct"]),
)
def test_decision_is_total_and_keeps_invariants(
    tmp_path_factory: pytest.TempPathFactory,
    provider: str,
    model: str,
    env: dict[str, str],
    prefer: str | None,
) -> None:
    ctx, _ = build_context(
        env=env,
        paths=DextoPaths(tmp_path_factory.getbasetemp() / "none"),
        prefer=prefer,
        marketplace=CATALOG,
    )
    try:
        d = decide(Selection(provider, model), ctx)
    except DextoError as err:
        assert err.code and err.message
        if provider.lower() == "dexto":
            assert isinstance(err, ProviderNotAllowedError)
        return
    assert d.provider == provider.lower() != "dexto"  # provider IDs match ignoring case
    provider = d.provider
    assert decide(Selection(provider, model), ctx) == d  # deterministic
    if not PROVIDERS[provider].routeable:
        assert d.route == "direct"
    if d.route == "direct":
        assert d.effective_model == model and d.effective_provider == provider
    if provider == "openrouter":
        assert d.effective_model == model


@settings(max_examples=200, deadline=None)
@given(rest=st.text(min_size=1, max_size=40))
def test_dexto_is_never_selectable(rest: str) -> None:
    with pytest.raises(DextoError) as e:
        parse_selection("dexto/" + rest)
    assert e.value.code in ("PROVIDER_NOT_ALLOWED", "INVALID_MODEL_ID")


def test_dexto_rejection_names_the_fix() -> None:
    with pytest.raises(ProviderNotAllowedError) as e:
        parse_selection("dexto/anthropic/claude-sonnet-4.5")
    assert "dexto login" in e.value.fix


@settings(max_examples=200, deadline=None)
@given(model=st.from_regex(r"[a-z0-9\-]{1,12}/[a-z0-9.\-]{1,20}(:[a-z]{1,6})?", fullmatch=True))
def test_openrouter_ids_pass_through_unchanged(
    tmp_path_factory: pytest.TempPathFactory, model: str
) -> None:
    for env in ({"DEXTO_API_KEY": "d"}, {"OPENROUTER_API_KEY": "o"}):
        ctx, _ = build_context(
            env=env, paths=DextoPaths(tmp_path_factory.getbasetemp() / "x"), marketplace=CATALOG
        )
        assert decide(parse_selection("openrouter/" + model), ctx).effective_model == model
