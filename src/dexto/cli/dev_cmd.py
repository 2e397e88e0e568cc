"""``dexto dev …``: developer tools (fake upstreams for tests, benchmarks and offline demos).

To add a fake server: write ``dexto/devtools/<module>.py`` exposing ``add_arguments(parser)``
and ``main(ns) -> int`` (stdlib-only top-level imports), then add one line to :data:`SERVERS`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

__all__ = ["SERVERS", "register"]

# subcommand -> (module, default port, help)
SERVERS: dict[str, tuple[str, int, str]] = {
    "fake-upstream": (
        "dexto.devtools.fake_upstream",
        8799,
        "deterministic OpenRouter-compatible upstream (chat, SSE, /models) with fault knobs",
    ),
}


def register(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="developer tools: fake upstreams for offline runs")
    sub = parser.add_subparsers(dest="dev_command", metavar="TOOL")
    for tool, (module_name, default_port, help_text) in SERVERS.items():
        p = sub.add_parser(tool, help=help_text, description=help_text)
        p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
        p.add_argument(
            "--port", type=int, default=default_port, help=f"port (default {default_port})"
        )
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(handler=_runner(module_name))
    from dexto.devtools import fake_direct  # fake direct providers: fake-openai, fake-anthropic

    fake_direct.register_dev_commands(sub)
    parser.set_defaults(handler=lambda ns: (parser.print_help(), 2)[1])


def _runner(module_name: str) -> Any:
    def run(ns: argparse.Namespace) -> int:
        return int(importlib.import_module(module_name).main(ns))

    return run
