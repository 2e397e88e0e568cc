"""The layering rule: lower layers never import the CLI or the server; nothing imports the CLI
except the CLI; the account client does not import the routing module for a URL helper."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "dexto"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        target = SRC / part
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


@pytest.mark.parametrize(
    "path",
    _files(
        "llm",
        "config",
        "auth",
        "gateway",
        "agents",
        "demo",
        "devtools",
        "server",
        "presentation.py",
        "errors.py",
    ),
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_no_import_of_the_cli(path: Path) -> None:
    assert not [m for m in _imports(path) if m == "dexto.cli" or m.startswith("dexto.cli.")]


@pytest.mark.parametrize(
    "path",
    _files("llm", "config", "auth", "gateway", "agents", "presentation.py"),
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_lower_layers_do_not_import_the_server(path: Path) -> None:
    assert not [m for m in _imports(path) if m.startswith("dexto.server")]


@pytest.mark.parametrize("path", _files("auth", "config"), ids=lambda p: str(p.relative_to(SRC)))
def test_auth_and_config_do_not_import_routing(path: Path) -> None:
    assert "dexto.llm.routing" not in _imports(path)
