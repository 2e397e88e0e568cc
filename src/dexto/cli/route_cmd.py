"""``dexto route SELECTION [--agent FILE] [--prefer dexto|direct] [--json]``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="explain how a selection would be routed and paid",
        description="Explain the routing decision for provider/model (or the agent file's llm).",
    )
    p.add_argument(
        "selection",
        nargs="?",
        help="provider/model, e.g. anthropic/claude-sonnet-4-5-20250929 (split on the first /)",
    )
    p.add_argument("--agent", metavar="FILE", help="agent YAML whose llm section to use")
    p.add_argument("--prefer", choices=["dexto", "direct"], help="override the routing policy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    from dexto._url import redact_url
    from dexto.cli._output import EXIT_ERROR, print_error, print_json
    from dexto.errors import DextoError

    try:
        decision = _decide(ns)
    except DextoError as err:
        alts = [a.to_json() for a in getattr(err, "alternatives", ())]
        if ns.json and alts:
            print_json({**err.to_dict(), "alternatives": alts})
            return EXIT_ERROR
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json(decision.to_json())
        return 0
    d = decision
    via = "via Dexto credits" if d.route == "dexto" else "direct (your key)"
    lines = [
        f"{d.provider}/{d.model} → {via}",
        f"  calls      {d.effective_provider}/{d.effective_model}"
        + ("" if d.mapping_verified else "  (mapping unverified)"),
        f"  endpoint   {redact_url(d.base_url) if d.base_url else '(provider SDK default)'}",
        f"  credential {d.credential_source}",
    ]
    if d.fallback:
        lines.append(
            f"  fallback   direct {d.fallback.effective_provider}/"
            f"{d.fallback.effective_model} if credits run out"
        )
    lines.append(f"  why        {d.reason}")
    for a in d.alternatives:
        lines.append(
            f"  own key    {a.provider}/{a.model} runs it directly with {a.credential_source}"
        )
    if d.marketplace_source is not None:
        where = {
            "cache": "the on-disk cache",
            "bundled": "the snapshot bundled with dexto",
            "live": "a fresh download",
        }.get(d.marketplace_source, d.marketplace_source)
        lines.append(f"  list       marketplace list from {where}")
    print("\n".join(lines))
    return 0


def _decide(ns: argparse.Namespace) -> Any:
    import os

    from dexto.agents.resolve import resolve_agent
    from dexto.config.agent import load_agent_file
    from dexto.llm.context import build_context
    from dexto.llm.routing import decide
    from dexto.llm.selection import parse_selection

    path = resolve_agent(ns.agent, os.environ, selection_given=bool(ns.selection))
    agent = load_agent_file(path) if path is not None else None
    if ns.selection:
        selection = parse_selection(ns.selection)
    else:
        assert agent is not None  # with neither, resolve_agent raised InvalidModelIdError
        selection = agent.llm.selection
    ctx, _ = build_context(agent=agent, prefer=ns.prefer)
    return decide(selection, ctx)
