"""``dexto chat [SELECTION] [--agent FILE|ID] [-m PROMPT] [--max-tokens N] [--prefer …] [--json]``.

Without a selection and ``--agent``, the default agent is used (``dexto.agents.resolve``). An
empty or blank ``-m`` prompt is refused before any request is made.

With ``-m``: one prompt, the answer streamed to stdout as it arrives, then one line (stderr) with
the route taken and the credits remaining. Without ``-m``: a REPL keeping the conversation.
``--json`` (with ``-m``) prints exactly ``{"text", "route": {...}, "usage", "creditsRemaining"}``.
Errors: ``{"error": {"code", "message", "fix"}}`` (``--json``) or two lines on stderr; exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dexto.presentation import route_line  # re-exported for existing callers

if TYPE_CHECKING:
    from dexto.llm.execution import ChatResult, Model

__all__ = ["register", "route_line", "run"]


def register(sub: Any, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help="chat with a model on its decided route",
        description="Chat with provider/model (or the agent file's llm) on the route dexto "
        "decides; if Dexto credits run out, continue on your own key.",
    )
    p.add_argument(
        "selection",
        nargs="?",
        help="provider/model, e.g. anthropic/claude-sonnet-4-5-20250929 (split on the first /)",
    )
    p.add_argument(
        "--agent",
        metavar="FILE|ID",
        help="agent YAML or installed agent id whose llm section to use (default: "
        "preference defaultAgent, else default-agent, when no selection is given)",
    )
    p.add_argument("-m", "--message", metavar="PROMPT", help="send one prompt and exit")
    p.add_argument(
        "--max-tokens",
        type=_positive_int,
        metavar="N",
        help="cap each answer at N tokens (lowers the credit hold)",
    )
    p.add_argument("--prefer", choices=["dexto", "direct"], help="override the routing policy")
    p.add_argument("--json", action="store_true", help="with -m: print one JSON object")
    p.set_defaults(handler=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a positive whole number")
    return value


def run(ns: argparse.Namespace) -> int:
    import os

    from dexto.agents.resolve import resolve_agent
    from dexto.cli._output import print_error
    from dexto.errors import ConfigError, DextoError
    from dexto.llm.execution import open_model

    if ns.json and ns.message is None:
        return print_error(
            ConfigError(
                "--json needs a prompt",
                field="--json",
                fix="pass -m PROMPT, or drop --json for the REPL",
            ),
            as_json=True,
        )
    if ns.message is not None and not ns.message.strip():
        return print_error(
            ConfigError(
                "the prompt is empty",
                field="--message",
                fix='pass some text, e.g. -m "Say hello", or drop -m for the interactive chat',
            ),
            as_json=ns.json,
        )
    params: dict[str, Any] = {}
    if ns.max_tokens is not None:
        params["max_tokens"] = ns.max_tokens
    try:
        agent = resolve_agent(ns.agent, os.environ, selection_given=bool(ns.selection))
        model = open_model(ns.selection, agent=agent, prefer=ns.prefer, source="cli")
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    with model:
        if ns.json:
            return _one_json(model, ns.message, params)
        if ns.message is not None:
            return _turn(model, [{"role": "user", "content": ns.message}], params)[0]
        return _repl(model, params)


def _one_json(model: Model, prompt: str, params: dict[str, Any]) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.errors import DextoError

    try:
        result = model.complete(prompt, **params)
    except DextoError as err:
        return print_error(err, as_json=True)
    for w in result.warnings:
        sys.stderr.write(f"warning: {w}\n")
    print_json(result.to_json())
    return 0


def _turn(
    model: Model, messages: list[dict[str, Any]], params: dict[str, Any]
) -> tuple[int, ChatResult | None]:
    """Stream one answer to stdout; route line and warnings to stderr. (exit code, result)."""
    from dexto.cli._output import print_error
    from dexto.errors import DextoError
    from dexto.llm.execution import Done, TextDelta

    out = sys.stdout
    result = None
    try:
        for event in model.stream(messages, **params):
            if isinstance(event, TextDelta):
                out.write(event.text)
                out.flush()
            elif isinstance(event, Done):
                result = event.result
    except DextoError as err:
        out.write("\n")
        out.flush()
        return print_error(err, as_json=False), None
    out.write("\n")
    out.flush()
    assert result is not None
    for tc in result.tool_calls:
        sys.stderr.write(f"tool call: {tc.name}({tc.arguments})\n")
    sys.stderr.write(route_line(result) + "\n")
    for w in result.warnings:
        sys.stderr.write(f"warning: {w}\n")
    return 0, result


def _repl(model: Model, params: dict[str, Any]) -> int:
    d = model.decision
    sys.stderr.write(
        f"chatting with {d.provider}/{d.model} — {d.reason}\ntype /exit or press Ctrl-D to quit\n"
    )
    messages: list[dict[str, Any]] = []
    while True:
        try:
            line = input("you> ")
        except EOFError:
            sys.stdout.write("\n")
            return 0
        if line.strip() in ("/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        _, result = _turn(model, messages, params)
        if result is None:
            messages.pop()
        else:
            messages.append(result.to_message())
