"""``dexto demo``: the offline demo of credits running out and the own-key fallback."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="offline demo of credits running out and BYOK fallback",
        description="Start a local gateway and fake providers, chat until the Dexto credits run "
        "out, continue on the (fake) Anthropic key, print the ledger. Needs no network.",
    )
    p.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    import signal
    import sys

    from dexto.cli._output import print_error
    from dexto.demo.run import run_demo
    from dexto.demo.stack import StackError
    from dexto.errors import DextoError

    # SIGTERM unwinds like Ctrl-C, so every started process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_demo(sys.stdout)
    except DextoError as err:
        return print_error(err, as_json=False)
    except StackError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
