"""Shared CLI output helpers: JSON printing and the one way errors are shown."""

from __future__ import annotations

import json
import sys
from typing import Any

from dexto.errors import DextoError

__all__ = ["EXIT_ERROR", "print_error", "print_json", "render_table"]

EXIT_ERROR = 2


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def print_error(err: DextoError, *, as_json: bool) -> int:
    """Print ``err`` (JSON on stdout, or one sentence plus the fix on stderr); return exit code."""
    if as_json:
        print_json(err.to_dict())
    else:
        sys.stderr.write(f"error: {err.message}\n")
        if err.fix:
            sys.stderr.write(f"fix: {err.fix}\n")
    return EXIT_ERROR


def render_table(headers: list[str], rows: list[list[Any]], *, empty: str = "(none)") -> str:
    """Left-aligned columns under upper-case headers; ``None`` shows as ``-``."""
    if not rows:
        return empty
    cells = [[h.upper() for h in headers]] + [
        ["-" if v is None else str(v) for v in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
