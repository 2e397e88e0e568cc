"""``dexto login``, ``dexto logout``, ``dexto whoami``, ``dexto billing status``.

- ``login``: device flow — prints the code and URL, polls the gateway, stores the key as the
  ``dexto`` entry of the auth store. ``--api-key KEY`` (``-`` reads stdin) verifies the key with
  ``GET /me/usage`` first; a refused key changes nothing.
- ``logout``: removes only the ``dexto`` entry.
- ``whoami`` / ``billing status``: ``{"email", "balanceUsd", "mtd"}`` for the current Dexto key.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["device_login", "register", "store_verified_key"]


def register(sub: Any, name: str) -> None:
    if name == "login":
        p = sub.add_parser(
            name,
            help="log in to Dexto (device flow or --api-key)",
            description="Log in to Dexto; the key is stored in auth.json (0600).",
        )
        p.add_argument(
            "--api-key",
            metavar="KEY",
            help="store this key after verifying it ('-' reads it from stdin)",
        )
        p.add_argument(
            "--timeout",
            type=float,
            metavar="S",
            help="give up waiting for approval after S seconds",
        )
        p.add_argument("--json", action="store_true", help="print the account as JSON")
        p.set_defaults(handler=run_login)
    elif name == "logout":
        p = sub.add_parser(name, help="remove the stored Dexto key")
        p.add_argument("--json", action="store_true", help="print errors as JSON")
        p.set_defaults(handler=run_logout)
    elif name == "whoami":
        p = sub.add_parser(name, help="show the Dexto account and balance")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(handler=run_whoami)
    else:
        p = sub.add_parser(name, help="billing status of the Dexto account")
        actions = p.add_subparsers(dest="billing_action", metavar="ACTION", required=True)
        st = actions.add_parser("status", help="balance and month-to-date spend")
        st.add_argument("--json", action="store_true", help="print one JSON object")
        st.set_defaults(handler=run_whoami)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def device_login(root: str, *, timeout_s: float | None = None) -> Any:
    """Run the device flow, telling the person what to do on stderr; return the key (Secret)."""
    from dexto.auth.login import poll_device_token, start_device_flow

    code = start_device_flow(root)
    _say(f"To log in, open {code.verification_url} and enter the code {code.user_code}")
    if code.verification_url_complete:
        _say(f"  (or open {code.verification_url_complete})")
    _say("Waiting for approval… (Ctrl-C to cancel)")
    return poll_device_token(root, code, timeout_s=timeout_s)


def store_verified_key(root: str, key: Any) -> dict[str, Any]:
    """Verify ``key`` with ``GET /me/usage``, then store it; return the account summary.

    A refused key raises before anything is written.
    """
    from dexto.auth.login import account_summary, fetch_usage
    from dexto.auth.store import ApiEntry, set_entry
    from dexto.config.paths import DextoPaths

    summary = account_summary(fetch_usage(root, key))
    set_entry(DextoPaths.from_env().auth, "dexto", ApiEntry(type="api", key=key.reveal()))
    return summary


def run_login(ns: argparse.Namespace) -> int:
    from dexto._secret import Secret
    from dexto.auth.login import check_key_format, resolve_root
    from dexto.cli._output import print_error, print_json
    from dexto.errors import DextoError

    root = resolve_root(os.environ)
    try:
        if ns.api_key is not None:
            raw = sys.stdin.readline() if ns.api_key == "-" else ns.api_key
            key = Secret(check_key_format(raw))
        else:
            key = device_login(root, timeout_s=ns.timeout)
        summary = store_verified_key(root, key)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json(summary)
    else:
        print(f"Logged in as {summary['email']} — balance ${summary['balanceUsd']}")
        _env_note()
    return 0


def _env_note() -> None:
    if os.environ.get("DEXTO_API_KEY", "").strip():
        _say(
            "note: DEXTO_API_KEY is set in your environment and takes precedence over the "
            "stored key"
        )


def run_logout(ns: argparse.Namespace) -> int:
    from dexto.auth.store import remove_entry
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    try:
        removed = remove_entry(DextoPaths.from_env().auth, "dexto")
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    print("Logged out: removed the Dexto key." if removed else "Not logged in; nothing to do.")
    _env_note()
    return 0


def run_whoami(ns: argparse.Namespace) -> int:
    from dexto.auth.credentials import dexto_credential
    from dexto.auth.login import account_summary, fetch_usage, resolve_root
    from dexto.auth.store import read_auth_store
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError, NoCredentialsError

    try:
        cred = dexto_credential(os.environ, read_auth_store(DextoPaths.from_env().auth))
        if cred is None or cred.secret is None:
            raise NoCredentialsError(
                "not logged in to Dexto", fix="run `dexto login` or set DEXTO_API_KEY"
            )
        summary = account_summary(fetch_usage(resolve_root(os.environ), cred.secret, cred.source))
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json(summary)
        return 0
    mtd = summary["mtd"]
    print(
        f"{summary['email']}\n  balance     ${summary['balanceUsd']}\n"
        f"  this month  ${mtd.get('costUsd', '0')} over {mtd.get('requests', 0)} requests\n"
        f"  key from    {cred.source}"
    )
    return 0
