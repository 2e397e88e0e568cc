"""Shared CLI output helpers: JSON printing and the one way errors are shown."""

from __future__ import annotations

import json
import sys
from typing import Any

from dexto.errors import DextoError

__all__ = ["EXIT_ERROR", "print_error", "print_json"]

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
