"""``dexto models [--provider P] [--search Q] [--json] [--refresh|--offline]`` (the merged
catalog) and ``dexto models audit [--json]`` (registry drift against the marketplace list).

``models add`` / ``models remove`` (custom models) live in ``dexto.cli.custom_models_cmd``.
``--refresh`` that cannot reach the list is an error (exit 2); a plain ``dexto models`` keeps the
list it has (and, after a failed attempt, does not retry for a while — see ``marketplace``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dexto.presentation import BADGES  # shared with the web UI

__all__ = ["register"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="list/search the merged catalog; add/remove custom models",
        description="List the catalog with route badges.",
    )
    p.add_argument("--provider", help="only this provider")
    p.add_argument("--search", metavar="Q", help="words to match in IDs and names")
    p.add_argument("--json", action="store_true", help="print the catalog as JSON")
    net = p.add_mutually_exclusive_group()
    net.add_argument(
        "--refresh",
        action="store_true",
        help="refresh the marketplace list now, even if the cache is fresh "
        "(fails if the list cannot be reached)",
    )
    net.add_argument(
        "--offline", action="store_true", help="use the cached marketplace list as is (no network)"
    )
    p.set_defaults(handler=run)
    import importlib

    try:
        actions = importlib.import_module("dexto.cli.custom_models_cmd")
    except ModuleNotFoundError:
        return
    actions.register_actions(p)
    _register_audit(p)


def _register_audit(p: argparse.ArgumentParser) -> None:
    """``models audit`` joins the sub-actions that ``custom_models_cmd`` created."""
    sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        sub = p.add_subparsers(dest="models_action", metavar="ACTION")
    audit = sub.add_parser("audit", help="compare the curated registry with the marketplace list")
    audit.add_argument("--json", dest="audit_json", action="store_true", help="print JSON")
    audit.set_defaults(handler=run_audit)


def run_audit(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_json
    from dexto.config.paths import DextoPaths
    from dexto.llm.audit import audit_registry, render_audit
    from dexto.llm.marketplace import load_marketplace
    from dexto.llm.registry import load_registry

    report = audit_registry(load_registry(), load_marketplace(DextoPaths.from_env()))
    if ns.audit_json:
        print_json(report)
    else:
        print(render_audit(report))
    return 0


def run(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.config.paths import DextoPaths
    from dexto.errors import DextoError
    from dexto.llm.catalog import build_catalog
    from dexto.llm.context import build_context
    from dexto.llm.marketplace import load_marketplace, refresh_marketplace
    from dexto.llm.providers import get_provider

    try:
        provider = get_provider(ns.provider).id if ns.provider else None
        paths = DextoPaths.from_env()
        # A stale or missing cache is refreshed with a short timeout; failures keep the cache.
        market = (
            load_marketplace(paths)
            if ns.offline
            else refresh_marketplace(paths, force=ns.refresh, strict=ns.refresh, timeout=2.0)
        )
        ctx, state = build_context(paths=paths, marketplace=market)
        catalog = build_catalog(
            ctx, state.preferences, state.custom_models, provider=provider, search=ns.search
        )
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    from dexto.cli.custom_models_cmd import shared_key_warnings

    for w in shared_key_warnings(state.custom_models):
        sys.stderr.write(f"warning: {w}\n")
    if ns.json:
        print_json(catalog)
    else:
        print(render_table(catalog))
    return 0


def render_table(catalog: dict[str, Any]) -> str:
    out: list[str] = []
    auth = catalog["auth"]
    out.append(
        f"Dexto: {'logged in' if auth['hasDextoKey'] else 'not logged in'}; "
        f"prefer {'Dexto credits' if auth['preferDextoCredits'] else 'your own keys'}"
    )
    mk = catalog["marketplace"]
    src = {
        "live": "downloaded now",
        "cache": f"from the cache ({mk['state']})",
        "bundled": f"from the snapshot bundled with dexto ({mk.get('snapshotDate', '?')})",
        "none": "not available",
    }.get(mk.get("source", "none"), mk.get("source"))
    out.append(f"Marketplace list: {mk['count']} models, {src}")
    for pid, prov in catalog["providers"].items():
        badge = BADGES[prov["effectiveRoute"]] if prov.get("runnable", True) else "not runnable"
        out.append(f"\n{prov['name']} ({pid}) — {badge}")
        if "fix" in prov:
            out.append(f"  to enable: {prov['fix']}")
        for m in prov["models"][:40]:
            star = "*" if m["featured"] else " "
            price = m["pricing"]
            cost = (
                f"${price['inputPerM']:g}/${price['outputPerM']:g} per M"
                if "inputPerM" in price and "outputPerM" in price
                else ""
            )
            tag = " [custom]" if m["custom"] else ""
            if m["effectiveRoute"] != prov["effectiveRoute"]:
                tag += f" [{BADGES[m['effectiveRoute']]}]"
            out.append(f"  {star} {m['id']:<48} {m['displayName'][:34]:<34} {cost}{tag}")
        if len(prov["models"]) > 40:
            out.append(f"    … {len(prov['models']) - 40} more (use --search)")
    return "\n".join(out)
