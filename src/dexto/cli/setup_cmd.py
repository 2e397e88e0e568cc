"""``dexto setup`` — first run: choose how to pay, then a provider and a model.

Interactive on a terminal: (1) Dexto Credits → runs the device login unless already logged in;
(2) your own key → a hidden prompt, stored in the 0600 auth store (skipped when a key is already
available). Then a provider and a model are picked from the catalog. Non-interactive with
``--mode credits|byok --provider P [--model M] [--api-key-stdin]``.

The result is written to the agent file (default ``default-agent``, installed if missing) as a
*native* selection — ``provider: dexto`` is never written — with a comment-preserving edit, and
``preferDextoCredits`` is set to match the chosen mode.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


class _Cancelled(Exception):
    pass


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="first-run set-up: Dexto credits or your own key",
        description="Choose how to pay (Dexto credits or your own key) and a model; writes the "
        "agent file. Interactive on a terminal; use --mode for scripts.",
    )
    p.add_argument(
        "--mode",
        choices=["credits", "byok"],
        help="pay with Dexto credits or your own key (non-interactive)",
    )
    p.add_argument("--provider", help="e.g. anthropic, openai, google, openrouter")
    p.add_argument("--model", help="model ID (default: the provider's default)")
    p.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the key from stdin (the Dexto key for credits, else the provider's)",
    )
    p.add_argument("--agent", default="default-agent", help="bundled agent id to configure")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error
    from dexto.errors import ConfigError, DextoError

    try:
        if ns.mode is None and not sys.stdin.isatty():
            raise ConfigError(
                "not a terminal, and no --mode given",
                field="mode",
                fix="run `dexto setup` in a terminal, or pass --mode credits|byok "
                "--provider P [--model M]",
            )
        mode, provider, model = _interactive() if ns.mode is None else _scripted(ns)
        result = _write(ns.agent, mode, provider, model)
    except _Cancelled:
        sys.stderr.write("setup cancelled; nothing was changed in the agent file\n")
        return 130
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    _summary(result, ns.json)
    return 0


# ---------------------------------------------------------------- state helpers


def _paths() -> Any:
    from dexto.config.paths import DextoPaths

    return DextoPaths.from_env()


def _store() -> Any:
    from dexto.auth.store import read_auth_store

    return read_auth_store(_paths().auth)


def _has_dexto() -> bool:
    from dexto.auth.credentials import dexto_credential

    return dexto_credential(os.environ, _store()) is not None


def _direct_source(provider: str) -> str | None:
    from dexto.auth.credentials import NO_KEY_NEEDED, direct_credential
    from dexto.llm.providers import get_provider

    cred = direct_credential(get_provider(provider), os.environ, _store())
    return None if cred is None or cred.source == NO_KEY_NEEDED else cred.source


def _providers() -> list[str]:
    """Pickable providers: curated ones plus openrouter (the marketplace); never dexto."""
    from dexto.llm.registry import load_registry

    return [*load_registry().providers(), "openrouter"]


def _login_credits(key_from_stdin: bool) -> None:
    from dexto._secret import Secret
    from dexto.auth.login import check_key_format, resolve_root
    from dexto.cli.account_cmd import device_login, store_verified_key

    root = resolve_root(os.environ)
    if key_from_stdin:
        summary = store_verified_key(root, Secret(check_key_format(sys.stdin.readline())))
    elif _has_dexto():
        return
    else:
        summary = store_verified_key(root, device_login(root))
    sys.stderr.write(f"Logged in as {summary['email']} — balance ${summary['balanceUsd']}\n")


def _store_provider_key(provider: str, key: str) -> None:
    from dexto.auth.store import ApiEntry, set_entry

    set_entry(_paths().auth, provider, ApiEntry(type="api", key=key))


def _check_model(provider: str, model: str) -> str:
    from dexto.llm.marketplace import load_marketplace
    from dexto.llm.registry import load_registry
    from dexto.llm.selection import validate_model_id

    validate_model_id(model)
    if provider == "openrouter":
        status = load_marketplace(_paths()).status(model)
        if status != "known":
            sys.stderr.write(f"note: {model} is {status} in the marketplace list; saved as typed\n")
    elif provider in load_registry().providers() and load_registry().get(provider, model) is None:
        sys.stderr.write(f"note: {model} is not in the curated {provider} list; saved as typed\n")
    return model


# ---------------------------------------------------------------- scripted


def _scripted(ns: argparse.Namespace) -> tuple[str, str, str]:
    from dexto.errors import ConfigError, NoCredentialsError
    from dexto.llm.providers import get_provider
    from dexto.llm.registry import load_registry

    if not ns.provider:
        raise ConfigError(
            "--provider is required with --mode",
            field="provider",
            fix="pass e.g. --provider anthropic",
        )
    p = get_provider(ns.provider)
    if ns.mode == "credits" and not p.routeable:
        raise ConfigError(
            f"{p.name} cannot be paid with Dexto credits",
            field="provider",
            fix="choose a provider such as anthropic, or use --mode byok",
        )
    default = load_registry().default(p.id)
    model = ns.model or (default.id if default else None)
    if model is None:
        raise ConfigError(f"{p.id} has no default model", field="model", fix="pass --model ID")
    _check_model(p.id, model)
    if ns.mode == "credits":
        _login_credits(ns.api_key_stdin)
    elif ns.api_key_stdin:
        from dexto.auth.login import check_key_format

        _store_provider_key(p.id, check_key_format(sys.stdin.readline(), p))
    elif p.requires_key and _direct_source(p.id) is None:
        from dexto.auth.credentials import direct_fix_hint

        raise NoCredentialsError(
            f"no key for {p.name}", fix=f"pass --api-key-stdin, or {direct_fix_hint(p)}"
        )
    return ns.mode, p.id, model


# ---------------------------------------------------------------- interactive


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        raise _Cancelled from None


def _choose(
    title: str, options: list[tuple[str, str]], default: int = 1, free_text: str | None = None
) -> str:
    """Numbered menu; returns the chosen option's value (or typed text if ``free_text``)."""
    print(title)
    for i, (_, label) in enumerate(options, 1):
        print(f"  {i:>2}) {label}")
    hint = f" or {free_text}" if free_text else ""
    while True:
        answer = _ask(f"Choose 1-{len(options)}{hint} [{default}]: ") or str(default)
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1][0]
        if free_text and not answer.isdigit():
            return answer
        print(f"  please enter a number from 1 to {len(options)}")


def _interactive() -> tuple[str, str, str]:
    from dexto.llm.providers import get_provider

    print("Welcome to Dexto.")
    mode = _choose(
        "How do you want to pay for model calls?",
        [
            ("credits", "Dexto Credits — one account for every provider"),
            ("byok", "My own API key (e.g. ANTHROPIC_API_KEY)"),
        ],
    )
    if mode == "credits":
        if _has_dexto():
            print("You are already logged in to Dexto.")
        else:
            _login_credits(False)
    names = [(pid, get_provider(pid).name) for pid in _providers()]
    provider = _choose("Which provider?", names)
    if mode == "byok":
        _ensure_own_key(provider)
    return mode, provider, _pick_model(provider)


def _ensure_own_key(provider: str) -> None:
    from dexto.cli.auth_cmd import read_secret
    from dexto.errors import ConfigError
    from dexto.llm.providers import get_provider

    source = _direct_source(provider)
    if source is not None:
        print(f"Using your existing key ({source}).")
        return
    p = get_provider(provider)
    while True:
        try:
            key = read_secret(f"Paste your {p.name} API key (input hidden): ", provider=p)
            break
        except ConfigError as err:
            print(f"  {err.message}; {err.fix}")
    _store_provider_key(provider, key)
    print(f"Stored your {p.name} key in the auth store (mode 0600).")


def _pick_model(provider: str) -> str:
    """Featured models first; a number picks one, typed text is taken as a model ID."""
    from dexto.errors import ConfigError
    from dexto.llm.registry import load_registry

    models = sorted(load_registry().models(provider), key=lambda m: (not m.featured, not m.default))
    options = [
        (m.id, f"{m.display_name:<28} {m.id}" + ("  (default)" if m.default else ""))
        for m in models
    ]
    default = next((i for i, m in enumerate(models, 1) if m.default), 1)
    while True:
        if options:
            chosen = _choose("Which model?", options, default=default, free_text="type a model ID")
        else:
            chosen = _ask("Marketplace model ID (e.g. anthropic/claude-sonnet-4.5): ")
        try:
            return _check_model(provider, chosen)
        except ConfigError as err:
            print(f"  {err.message}; {err.fix}")


# ---------------------------------------------------------------- writing and reporting


def _write(agent_id: str, mode: str, provider: str, model: str) -> dict[str, Any]:
    from dexto.agents.manager import ensure_installed
    from dexto.config.agent import FIX, load_agent_file
    from dexto.config.preferences import set_preference
    from dexto.config.yaml_edit import set_yaml_values
    from dexto.llm.providers import INTERNAL_PROVIDER

    assert provider != INTERNAL_PROVIDER  # selections are native, never the internal route
    paths = _paths()
    path = ensure_installed(paths, agent_id)
    load_agent_file(path)  # an invalid agent file is reported, never overwritten
    set_yaml_values(path, {("llm", "provider"): provider, ("llm", "model"): model}, fix=FIX)
    set_preference(paths.preferences, "preferDextoCredits", mode == "credits")
    if agent_id != "default-agent":  # plain `dexto chat` / `dexto route` use this agent
        set_preference(paths.preferences, "defaultAgent", agent_id)
    agent = load_agent_file(path)
    return {
        "agent": str(path),
        "provider": provider,
        "model": model,
        "mode": mode,
        "preferDextoCredits": mode == "credits",
        "decision": _decision(agent),
    }


def _decision(agent: Any) -> dict[str, Any]:
    from dexto.errors import DextoError
    from dexto.llm.context import build_context
    from dexto.llm.routing import decide

    try:
        ctx, _ = build_context(agent=agent)
        return dict(decide(agent.llm.selection, ctx).to_json())
    except DextoError as err:
        return dict(err.to_dict())


def _summary(result: dict[str, Any], as_json: bool) -> None:
    from dexto.cli._output import print_json

    if as_json:
        print_json(result)
        return
    d = result["decision"]
    print(f"Saved {result['provider']}/{result['model']} to {result['agent']}")
    if "error" in d:
        print(f"  not usable yet: {d['error']['message']} — {d['error']['fix']}")
    else:
        via = "via Dexto credits" if d["route"] == "dexto" else "direct, with your own key"
        print(f"  calls will go {via} ({d['credentialSource']})")
    print('Next: dexto chat -m "hello"   (uses this agent; `dexto route` explains the route)')
