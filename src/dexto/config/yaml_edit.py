"""Comment-preserving YAML edits: change values in place, keep everything else byte-for-byte.

``set_yaml_values(path, {("llm", "model"): "gpt-5-mini"})`` loads the file with ruamel's
round-trip loader, sets each dotted path (creating mappings as needed), and writes atomically
with a timestamped backup (SPEC §9). ``remove_yaml_key`` deletes one path.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dexto.config._yaml import load_yaml_text
from dexto.config.files import atomic_write

__all__ = ["remove_yaml_key", "render_yaml", "set_yaml_values"]


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def render_yaml(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def _load(path: Path, fix: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    text = path.read_text("utf-8") if path.exists() else ""
    doc = load_yaml_text(text, file=str(path), fix=fix) if text.strip() else None
    return CommentedMap() if doc is None else doc


def set_yaml_values(path: Path, values: Mapping[Sequence[str], Any], *, fix: str = "",
                    backup: bool = True, mode: int | None = None) -> None:
    """Set each key path to its value; the rest of the file (comments, order) is untouched."""
    from ruamel.yaml.comments import CommentedMap

    doc = _load(path, fix)
    for key_path, value in values.items():
        node = doc
        for part in key_path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = CommentedMap()
            node = node[part]
        node[key_path[-1]] = value
    atomic_write(path, render_yaml(doc), backup=backup and path.exists(), mode=mode)


def remove_yaml_key(path: Path, key_path: Sequence[str], *, fix: str = "",
                    backup: bool = True) -> bool:
    """Delete one key path; return False (and write nothing) if it was absent."""
    doc = _load(path, fix)
    node = doc
    for part in key_path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return False
    if not isinstance(node, dict) or key_path[-1] not in node:
        return False
    del node[key_path[-1]]
    atomic_write(path, render_yaml(doc), backup=backup)
    return True
