"""Entry point: dispatch to one command module, importing nothing else (fast start-up).

A command module exposes ``register(subparsers, name)``, which adds the parser for ``name`` and
sets ``handler`` (a callable taking the parsed namespace and returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "route": ("dexto.cli.route_cmd", "explain how a selection would be routed and paid"),
    "models": ("dexto.cli.models_cmd", "list/search the merged catalog; add/remove custom models"),
    "chat": ("dexto.cli.chat_cmd", "chat with a model on its decided route"),
    "login": ("dexto.cli.account_cmd", "log in to Dexto (device flow or --api-key)"),
    "logout": ("dexto.cli.account_cmd", "remove the stored Dexto key"),
    "whoami": ("dexto.cli.account_cmd", "show the Dexto account and balance"),
    "billing": ("dexto.cli.account_cmd", "billing status of the Dexto account"),
    "auth": ("dexto.cli.auth_cmd", "list or set stored provider credentials"),
    "prefs": ("dexto.cli.prefs_cmd", "get/set local preferences"),
    "agents": ("dexto.cli.agents_cmd", "list/install/update bundled agents"),
    "setup": ("dexto.cli.setup_cmd", "first-run set-up: Dexto credits or your own key"),
    "serve": ("dexto.cli.serve_cmd", "run the local agent server and web UI"),
    "gateway": ("dexto.cli.gateway_cmd", "run and administer the Dexto gateway"),
    "dev": ("dexto.cli.dev_cmd", "developer tools: fake upstreams for offline runs"),
    "demo": ("dexto.cli.demo_cmd", "offline demo of credits running out and BYOK fallback"),
}


def _build_parser(only: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dexto", description="Dexto: LLM calls with payment as infrastructure."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            sub.add_parser(name, help=help_text + " (not available in this build)")
            continue
        module.register(sub, name)
    return parser


#: Exit code when the reader of stdout went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A closed stdout (``dexto models | head``) ends it quietly with 141."""
    try:
        try:
            return _main(argv)
        finally:  # also on SystemExit (--help): a closed pipe is met here, not at shutdown
            sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args if not a.startswith("-")), None)
    parser = _build_parser(first if first in COMMANDS else None)
    ns = parser.parse_args(args)
    if ns.version:
        from dexto import __version__

        print(__version__)
        return 0
    handler = getattr(ns, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if ns.command is None else 2
    try:
        return int(handler(ns))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
