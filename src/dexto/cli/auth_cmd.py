"""``dexto auth list [--json]``, ``dexto auth set NAME``, ``dexto auth remove NAME``.

``list`` shows, per provider, every credential source present *by name* ("env:OPENAI_API_KEY",
"auth-store:openai") and which one wins; never a secret. ``set`` reads a key from a hidden prompt
on a terminal, or from the first line of stdin otherwise, and stores it in the 0600 auth store.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["read_secret", "register"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="list or set stored provider credentials",
        description="Credential sources by name (never secrets); store keys in auth.json (0600).",
    )
    actions = p.add_subparsers(dest="auth_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="show each provider's credential sources")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=run_list)
    st = actions.add_parser("set", help="store a key (hidden prompt, or stdin when piped)")
    st.add_argument("name", metavar="PROVIDER", help="e.g. anthropic, openai, openrouter")
    st.add_argument("--stdin", action="store_true", help="read the key from stdin even on a TTY")
    st.add_argument("--json", action="store_true", help="print errors as JSON")
    st.set_defaults(handler=run_set)
    rm = actions.add_parser("remove", help="delete a stored key")
    rm.add_argument("name", metavar="PROVIDER")
    rm.add_argument("--json", action="store_true", help="print errors as JSON")
    rm.set_defaults(handler=run_remove)


def read_secret(prompt: str, *, force_stdin: bool = False, provider: Any = None) -> str:
    """A key from a hidden prompt (TTY) or the first line of stdin; format-checked, never echoed.

    ``provider`` (a ``Provider``; None for the Dexto key) picks the key shape the fix describes.
    """
    import getpass

    from dexto.auth.login import check_key_format

    if sys.stdin.isatty() and not force_stdin:
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline()
    return check_key_format(value, provider)


def entry_name(name: str) -> str:
    """A provider ID in its canonical spelling (``OpenAI`` → ``openai``); other auth-store
    names as typed."""
    from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS, canonical_provider_id

    canonical = canonical_provider_id(name)
    return canonical if canonical in PROVIDERS or canonical == INTERNAL_PROVIDER else name


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` — did you mean X?`` for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" — did you mean {close[0]}?" if close else ""


def sources(env: dict[str, str], store: Any) -> dict[str, Any]:
    """The ``auth list`` object: source names per provider, the winning one, store entry types."""
    from dexto.auth.credentials import DEXTO_KEY_ENV, dexto_credential, direct_credential
    from dexto.llm.providers import PROVIDERS

    def present(names: tuple[str, ...], store_name: str) -> list[str]:
        found = [f"env:{n}" for n in names if env.get(n, "").strip()]
        return found + ([f"auth-store:{store_name}"] if store_name in store else [])

    dexto = dexto_credential(env, store)
    out: dict[str, Any] = {
        "dexto": {
            "sources": present((DEXTO_KEY_ENV,), "dexto"),
            "active": dexto.source if dexto else None,
        }
    }
    providers: dict[str, Any] = {}
    for pid, p in PROVIDERS.items():
        cred = direct_credential(p, env, store)
        providers[pid] = {
            "sources": present(p.env_vars, pid),
            "requiresKey": p.requires_key,
            "active": cred.source if cred else None,
        }
    out["providers"] = providers
    out["store"] = {name: entry.type for name, entry in store.items()}
    return out


def run_list(ns: argparse.Namespace) -> int:
    import os

    from dexto.auth.store import read_auth_store
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    paths = DextoPaths.from_env()
    try:
        data = sources(dict(os.environ), read_auth_store(paths.auth))
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"file": str(paths.auth), **data})
        return 0
    print(f"auth store: {paths.auth}")
    print(f"  {'dexto':<18} {_describe(data['dexto'])}")
    for pid, info in data["providers"].items():
        print(f"  {pid:<18} {_describe(info)}")
    extra = [n for n in data["store"] if n != "dexto" and n not in data["providers"]]
    if extra:
        print("other stored entries: " + ", ".join(extra))
    return 0


def _describe(info: dict[str, Any]) -> str:
    active: str | None = info["active"]
    if active is None:
        return "none"
    if active == "none-required" or not info["sources"]:
        return active
    others: list[str] = [s for s in info["sources"] if s != active]
    return active + (f"  (also: {', '.join(others)})" if others else "")


def _settable(name: str) -> str:
    from dexto.auth.credentials import accepts_pasted_key
    from dexto.errors import ConfigError
    from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS

    name = entry_name(name)
    if name == INTERNAL_PROVIDER:
        raise ConfigError(
            "the Dexto key is stored by logging in",
            field="name",
            fix="run `dexto login` or `dexto login --api-key -` (verifies the key)",
        )
    p = PROVIDERS.get(name)
    if p is not None and p.cloud_chain:
        raise ConfigError(
            f"{p.name} uses its cloud credential chain, not a stored key",
            field="name",
            fix="configure the cloud SDK credentials instead",
        )
    if p is not None and not accepts_pasted_key(p):
        raise ConfigError(f"{p.name} needs no key", field="name", fix="nothing to store")
    if p is None:
        from dexto.auth.store import check_entry_name

        check_entry_name(name)
    return name


def run_set(ns: argparse.Namespace) -> int:
    from dexto.auth.credentials import accepts_pasted_key
    from dexto.auth.store import ApiEntry, read_auth_store, set_entry
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import ConfigError, DextoError
    from dexto.llm.providers import PROVIDERS

    paths = DextoPaths.from_env()
    try:
        name = _settable(ns.name)
        if name not in PROVIDERS and name not in read_auth_store(paths.auth):
            keyed = [p for p, v in PROVIDERS.items() if accepts_pasted_key(v)]
            raise ConfigError(
                f"unknown provider {name!r}{did_you_mean(name, keyed)}",
                field="name",
                fix="use a provider id, e.g. " + ", ".join(keyed),
            )
        key = read_secret(
            f"{name} API key (input hidden): ", force_stdin=ns.stdin, provider=PROVIDERS.get(name)
        )
        set_entry(paths.auth, name, ApiEntry(type="api", key=key))
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    print(f"stored the {name} key in {paths.auth} (mode 0600)")
    return 0


def run_remove(ns: argparse.Namespace) -> int:
    from dexto.auth.store import read_auth_store, remove_entry
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import ConfigError, DextoError
    from dexto.llm.providers import INTERNAL_PROVIDER, PROVIDERS

    paths = DextoPaths.from_env()
    name = entry_name(ns.name)
    try:
        removed = remove_entry(paths.auth, name)
        if not removed and name not in PROVIDERS and name != INTERNAL_PROVIDER:
            stored = list(read_auth_store(paths.auth))
            choices = stored + [INTERNAL_PROVIDER, *PROVIDERS]
            raise ConfigError(
                f"no stored entry named {name[:64]!r}{did_you_mean(name, choices)}",
                field="name",
                fix="stored entries: " + (", ".join(stored) or "none") + " (see `dexto auth list`)",
            )
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    print(f"removed {name} from {paths.auth}" if removed else f"no stored {name} key")
    return 0
