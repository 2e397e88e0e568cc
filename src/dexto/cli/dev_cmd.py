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
        p.set_defaults(handler=_runner(module_name, tool))
    from dexto.devtools import fake_direct  # fake direct providers: fake-openai, fake-anthropic

    fake_direct.register_dev_commands(sub)
    for kind in ("openai", "anthropic"):
        tool = f"fake-{kind}"
        sub.choices[tool].set_defaults(handler=_announced(fake_direct.main, tool))
    parser.set_defaults(handler=lambda ns: (parser.print_help(), 2)[1])


def _runner(module_name: str, tool: str) -> Any:
    return _announced(lambda ns: importlib.import_module(module_name).main(ns), tool)


def _announced(main: Any, what: str) -> Any:
    """Check that ``--host/--port`` can be bound (port 0 picks a free port), print the URL,
    then run the fake; a busy port is a clean error before anything starts."""

    def run(ns: argparse.Namespace) -> int:
        from dexto.cli._listen import bind_listener, listen_url
        from dexto.cli._output import print_error
        from dexto.errors import DextoError

        try:
            probe = bind_listener(ns.host, ns.port)
        except DextoError as err:
            return print_error(err, as_json=False)
        ns.port = probe.getsockname()[1]
        probe.close()
        print(
            f"dexto dev {what} listening on {listen_url(ns.host, ns.port)}  (Ctrl-C to stop)",
            flush=True,
        )
        return int(main(ns))

    return run
