"""``dexto agents list|install|update|diff`` — bundled agents that survive upgrades (SPEC §9)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

_WORDS = {
    "installed": "installed",
    "replaced": "replaced (backup kept)",
    "updated": "updated (backup kept)",
    "unchanged": "already up to date",
    "kept-modified": "modified by you — left alone (see `dexto agents diff ID`)",
    "not-installed": "not installed",
}


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="list/install/update bundled agents",
        description="Bundled agents under $DEXTO_HOME/agents; updates never overwrite your edits.",
    )
    actions = p.add_subparsers(dest="agents_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="agents and their state")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=run_list)
    ins = actions.add_parser("install", help="install bundled agents")
    ins.add_argument("ids", nargs="*", metavar="ID", help="agent ids (default: default-agent)")
    ins.add_argument("--all", action="store_true", help="install every bundled agent")
    ins.add_argument(
        "--force",
        action="store_true",
        help="replace a modified copy (a timestamped backup is kept)",
    )
    ins.add_argument("--json", action="store_true", help="print one JSON object")
    ins.set_defaults(handler=run_install)
    up = actions.add_parser("update", help="replace unmodified copies with the bundled version")
    up.add_argument("ids", nargs="*", metavar="ID", help="agent ids (default: all bundled)")
    up.add_argument("--json", action="store_true", help="print one JSON object")
    up.set_defaults(handler=run_update)
    df = actions.add_parser("diff", help="show your changes against the bundled version")
    df.add_argument("id", metavar="ID")
    df.add_argument("--json", action="store_true", help="print errors as JSON")
    df.set_defaults(handler=run_diff)


def run_list(ns: argparse.Namespace) -> int:
    from dexto.agents.manager import list_agents
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    try:
        agents = list_agents(DextoPaths.from_env())
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"agents": [a.to_json() for a in agents]})
        return 0
    for a in agents:
        print(f"{a.id:<20} {a.state:<17} {a.path}")
    return 0


def _report(changes: list[Any], as_json: bool) -> None:
    from dexto.cli._output import print_json

    if as_json:
        print_json({"changes": [c.to_json() for c in changes]})
        return
    for c in changes:
        print(f"{c.id:<20} {_WORDS[c.action]}")


def run_install(ns: argparse.Namespace) -> int:
    from dexto.agents.bundled import bundled_agent_ids
    from dexto.agents.manager import install_agent
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    ids = bundled_agent_ids() if ns.all else (ns.ids or ["default-agent"])
    paths = DextoPaths.from_env()
    changes = []
    try:
        for agent_id in ids:
            changes.append(install_agent(paths, agent_id, force=ns.force))
    except DextoError as err:
        if not ns.json:
            _report(changes, False)
        return print_error(err, as_json=ns.json)
    _report(changes, ns.json)
    return 0


def run_update(ns: argparse.Namespace) -> int:
    from dexto.agents.manager import update_agents
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    try:
        changes = update_agents(DextoPaths.from_env(), ns.ids or None)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    _report(changes, ns.json)
    return 0


def run_diff(ns: argparse.Namespace) -> int:
    from dexto.agents.manager import diff_agent
    from dexto.cli._output import print_error
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError

    try:
        text = diff_agent(DextoPaths.from_env(), ns.id)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    print(text.rstrip("\n") if text else f"{ns.id}: no differences from the bundled version")
    return 0
