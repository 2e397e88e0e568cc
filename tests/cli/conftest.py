"""Run the real ``dexto`` console script in a subprocess with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

DEXTO = str(Path(sys.executable).with_name("dexto"))

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def dexto(isolated_env: Path) -> Run:
    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items()}
        full.update(env or {})
        return subprocess.run(
            [DEXTO, *args],
            env=full,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    return run
