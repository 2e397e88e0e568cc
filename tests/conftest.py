"""Shared fixtures: every test runs with a private DEXTO_HOME and no credentials from the host."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._http import ModelsServer

_PREFIXES = ("DEXTO_", "AWS_", "GOOGLE_", "GEMINI_")
_SUFFIXES = ("_API_KEY", "_BASE_URL")


def _is_credential_var(name: str) -> bool:
    return name.startswith(_PREFIXES) or name.endswith(_SUFFIXES)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Clean credential env vars; DEXTO_HOME in a tmp dir; no network (gateway, marketplace)."""
    for name in list(os.environ):
        if _is_credential_var(name):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "dexto-home"
    home.mkdir()
    monkeypatch.setenv("DEXTO_HOME", str(home))
    monkeypatch.setenv("DEXTO_OPENROUTER_MODELS_URL", "http://127.0.0.1:9/api/v1/models")
    monkeypatch.setenv("DEXTO_GATEWAY_URL", "http://127.0.0.1:9")  # tests never reach out
    yield home


@pytest.fixture
def models_server() -> Iterator[ModelsServer]:
    """A real loopback server answering GET with an OpenRouter-shaped models list."""
    s = ModelsServer()
    t = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    t.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    t.join()
