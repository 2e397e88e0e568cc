"""Words and one-line summaries shown to people, shared by the CLI, the demo and the web UI.

Lives below ``cli/``, ``server/`` and ``demo/`` so that none of them imports another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dexto.llm.execution import ChatResult

__all__ = ["BADGES", "route_line"]

#: A provider's effective route → its badge in `dexto models` and the web picker.
BADGES = {"dexto": "via Dexto", "direct": "your key", "none": "not available"}


def route_line(result: ChatResult) -> str:
    """One line: route taken, effective model, credits remaining (and the fallback note)."""
    from dexto.llm.execution._outcome import usd_text

    r = result.route
    via = "via Dexto credits" if r.route == "dexto" else "direct (your key)"
    line = f"[{via} · {r.effective_provider}/{r.effective_model}"
    if result.credits_remaining is not None:
        line += f" · credits ${usd_text(result.credits_remaining)}"
    line += "]"
    if r.fell_back:
        line += f" {r.reason}"
    return line
