"""Fixtures: an agent file with comments, and a factory for running servers (stopped after)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server._serve import AGENT_YAML, Served, start

StartServer = Callable[..., Served]


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent" / "demo-agent.yml"
    path.parent.mkdir()
    path.write_text(AGENT_YAML, "utf-8")
    return path


@pytest.fixture
def serve(isolated_env: Path, agent_file: Path) -> Iterator[StartServer]:
    started: list[Served] = []

    def factory(env: dict[str, str] | None = None, **kw: Any) -> Served:
        s = start(isolated_env, kw.pop("agent", agent_file), env, **kw)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()
