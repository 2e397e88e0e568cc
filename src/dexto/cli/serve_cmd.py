"""``dexto serve [--agent FILE] [--host H] [--port P] [--token T]``: agent server and web UI."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "resolve_agent_path"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="run the local agent server and web UI",
        description="Serve one agent's model catalog, selection and chat over HTTP, with a web "
        "model picker at /. Binds to loopback; any other address requires a token.",
    )
    p.add_argument(
        "--agent",
        metavar="FILE|ID",
        help="agent YAML or installed agent id (default: preference defaultAgent, "
        "else default-agent)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", default="3001", help="port (default 3001; 0 picks a free port)")
    p.add_argument(
        "--token",
        help="require this bearer token (default: $DEXTO_SERVER_TOKEN; "
        "mandatory when not bound to loopback)",
    )
    p.add_argument(
        "--no-refresh",
        action="store_true",
        help="do not refresh the marketplace list in the background",
    )
    p.set_defaults(handler=run)


def resolve_agent_path(agent: str | None, env: Any) -> Any:
    """``--agent`` (a path or an agent id), else the default agent, installed if missing."""
    from dexto.agents.resolve import resolve_agent

    return resolve_agent(agent, env, selection_given=False, install_default=True)


def run(ns: argparse.Namespace) -> int:
    """Check the flags and bind the listening socket (nothing written yet: a busy port is
    refused before the default agent is installed), resolve the agent (the default agent is
    installed if missing), serve on that socket."""
    import dataclasses
    import os

    from dexto.cli._listen import bind_listener, parse_port
    from dexto.cli._output import print_error
    from dexto.errors import DextoError
    from dexto.server.settings import TOKEN_ENV, ServerSettings, check_listen

    env = dict(os.environ)
    token = ns.token or env.get(TOKEN_ENV) or None
    try:
        port = parse_port(ns.port)
        check_listen(ns.host, port, token, flags=True)
        sock = bind_listener(ns.host, port)
    except DextoError as err:
        return print_error(err, as_json=False)
    try:
        settings = ServerSettings(
            agent_path=resolve_agent_path(ns.agent, env),
            host=ns.host,
            port=port,
            token=token,
            env=env,
            refresh_marketplace=not ns.no_refresh,
        )
    except BaseException as exc:
        sock.close()
        if isinstance(exc, DextoError):
            return print_error(exc, as_json=False)
        raise
    # The app's Host check needs the port actually bound (--port 0 picks one).
    return _serve(dataclasses.replace(settings, port=sock.getsockname()[1]), sock)


def _serve(settings: Any, sock: Any) -> int:
    from dexto.cli._listen import listen_url, run_uvicorn
    from dexto.server import create_app

    url = listen_url(settings.host, settings.port) + "/"
    print(f"dexto serve: {settings.agent_path}")
    print(f"  web UI  {url}" + ("#token=<your token>" if settings.token else ""))
    print(f"  API     {url}openapi.json", flush=True)
    return run_uvicorn(
        create_app(settings), sock, log_level="warning", access_log=False, server_header=False
    )
