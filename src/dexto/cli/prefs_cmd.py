"""``dexto prefs list|get|set|unset`` — typed local preferences (``preferences.yml``).

Values are validated per key (``preferDextoCredits`` takes ``true``/``false``; list keys take
comma-separated values); the file keeps its comments, order and formatting.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="get/set local preferences",
        description="Local preferences in $DEXTO_HOME/preferences.yml (comments are kept).",
    )
    actions = p.add_subparsers(dest="prefs_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="every preference with its value")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=run_list)
    get = actions.add_parser("get", help="one preference's value")
    get.add_argument("key")
    get.add_argument("--json", action="store_true", help="print one JSON object")
    get.set_defaults(handler=run_get)
    st = actions.add_parser("set", help="set a preference (validated)")
    st.add_argument("key")
    st.add_argument("value", help="true/false, a number, or comma-separated values")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(handler=run_set)
    un = actions.add_parser("unset", help="remove a preference (back to its default)")
    un.add_argument("key")
    un.add_argument("--json", action="store_true", help="print one JSON object")
    un.set_defaults(handler=run_unset)


def _show(value: Any) -> str:
    import json

    return json.dumps(value)


def run_list(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.config.preferences import list_preferences
    from dexto.errors import DextoError

    path = DextoPaths.from_env().preferences
    try:
        prefs = list_preferences(path)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"file": str(path), "preferences": prefs})
        return 0
    for key, info in prefs.items():
        origin = "" if info["set"] else "  (default)"
        print(f"{key:<22} {_show(info['value'])}{origin}")
    return 0


def run_get(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.config.preferences import get_preference
    from dexto.errors import DextoError

    try:
        value = get_preference(DextoPaths.from_env().preferences, ns.key)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"key": ns.key, "value": value})
    else:
        print(_show(value))
    return 0


def run_set(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.config.preferences import parse_pref_value, set_preference
    from dexto.errors import DextoError

    paths = DextoPaths.from_env()
    path = paths.preferences
    try:
        value = parse_pref_value(ns.key, ns.value)
        if ns.key == "defaultAgent":
            _check_agent(paths, value)
        set_preference(path, ns.key, value)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"key": ns.key, "value": value})
    else:
        print(f"{ns.key} = {_show(value)}")
    return 0


def _check_agent(paths: Any, agent_id: str) -> None:
    """``defaultAgent`` must name an installed or bundled agent."""
    from dexto.agents.resolve import known_agent_ids, unknown_agent_error

    installed, bundled = known_agent_ids(paths)
    if agent_id not in installed and agent_id not in bundled:
        raise unknown_agent_error(paths, agent_id, field="defaultAgent")


def run_unset(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.config.preferences import unset_preference
    from dexto.errors import DextoError

    try:
        removed = unset_preference(DextoPaths.from_env().preferences, ns.key)
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json({"key": ns.key, "removed": removed})
    else:
        print(f"{ns.key} unset" if removed else f"{ns.key} was not set")
    return 0
