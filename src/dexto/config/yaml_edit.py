"""Comment-preserving YAML edits: change values in place, keep everything else byte-for-byte.

``set_yaml_values(path, {("llm", "model"): "gpt-5-mini"})`` edits the file's *text*:

- an existing single-line scalar (plain, single- or double-quoted) or one-line flow collection
  has only its own characters replaced, in the quoting style it had; comments on the same line,
  other keys, blank lines and indentation stay byte-for-byte identical;
- a missing key is inserted as one new line (plus lines for missing parent mappings) at the end
  of its parent block, indented like its siblings;
- ``remove_yaml_key`` deletes the key's line(s) for a one-line value.

Every textual edit is verified by re-parsing: the edited path must hold the new value and the
rest of the document must be unchanged. When that is not so (block scalars, anchors, multi-line
values, flow-style parents …) the edit falls back to a ruamel round-trip dump, which still keeps
comments and order. Writes are atomic with a timestamped backup (SPEC §9). A file that does not
parse is an error naming file and line, and is never rewritten.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dexto.config._yaml import load_yaml_text, not_utf8
from dexto.config.files import atomic_write, path_error

__all__ = [
    "edit_yaml_text",
    "remove_yaml_key",
    "remove_yaml_text",
    "render_yaml",
    "set_yaml_values",
]

KeyPath = Sequence[str]
_PLAIN_OK = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+:\- ]*$")


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


def _parse(text: str, file: str, fix: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    doc = load_yaml_text(text, file=file, fix=fix) if text.strip() else None
    return CommentedMap() if doc is None else doc


def _plain(node: Any) -> Any:
    """ruamel containers/scalars → plain Python values, for comparisons."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    for t in (bool, int, float, str):
        if isinstance(node, t):
            return t(node)
    return node


# ---------------------------------------------------------------- rendering scalars and lists


def _render_scalar(value: Any, style: str = "") -> str:
    """YAML text for a scalar; ``style`` is the quote character the old value used ('' plain)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if style == "'" and "\n" not in text:
        return "'" + text.replace("'", "''") + "'"
    plain_ok = _PLAIN_OK.match(text) and not text.endswith(" ")
    if style != '"' and plain_ok and _plain_roundtrips(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _plain_roundtrips(text: str) -> bool:
    try:
        return bool(_plain(_yaml().load(f"k: {text}\n"))["k"] == text)
    except Exception:
        return False


def _render_value(value: Any, style: str = "") -> str | None:
    """One-line YAML text for ``value``, or None when it needs block layout (mappings)."""
    if isinstance(value, list | tuple):
        if any(isinstance(v, dict | list | tuple) for v in value):
            return None
        return "[" + ", ".join(_render_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return None
    return _render_scalar(value, style)


# ---------------------------------------------------------------- locating a value's text span


def _quoted_end(line: str, start: int) -> int | None:
    q = line[start]
    i = start + 1
    while i < len(line):
        if q == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == q:
            if q == "'" and line[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return None


def _flow_end(line: str, start: int) -> int | None:
    depth = 0
    i = start
    while i < len(line):
        c = line[i]
        if c in "\"'":
            end = _quoted_end(line, i)
            if end is None:
                return None
            i = end
            continue
        depth += c in "[{"
        depth -= c in "]}"
        if depth == 0:
            return i + 1
        i += 1
    return None


def _span(line: str, col: int) -> tuple[int, str] | None:
    """(end column, quote style) of the one-line value starting at ``col``, or None."""
    if col >= len(line):
        return None
    c = line[col]
    if c in "\"'":
        end = _quoted_end(line, col)
        return (end, c) if end is not None else None
    if c in "[{":
        end = _flow_end(line, col)
        return (end, "") if end is not None else None
    if c in "|>&*!#":
        return None
    m = re.search(r"\s#", line[col:])
    stop = col + m.start() if m else len(line)
    return col + len(line[col:stop].rstrip()), ""


# ---------------------------------------------------------------- text edits


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _replace_span(text: str, parent: Any, key: str, value: Any) -> str | None:
    lc = getattr(parent, "lc", None)
    if lc is None or key not in lc.data or isinstance(parent[key], dict):
        return None
    _, _, vline, vcol = lc.data[key]
    lines = _lines(text)
    if vline >= len(lines):
        return None
    line = lines[vline]
    span = _span(line.rstrip("\r\n"), vcol)
    if span is None:
        return None
    end, style = span
    rendered = _render_value(value, style)
    if rendered is None:
        return None
    lines[vline] = line[:vcol] + rendered + line[end:]
    return "".join(lines)


def _block_end(text: str, parent_indent: int, first_line: int) -> int:
    """Index of the line after the last content line of a block starting at ``first_line``."""
    lines = _lines(text)
    last = first_line
    for i in range(first_line, len(lines)):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[i]) - len(lines[i].lstrip(" ")) <= parent_indent:
            break
        last = i
    return last + 1


def _insert_key(text: str, doc: Any, path: KeyPath, value: Any) -> str | None:
    """Insert ``path`` (and any missing parents) as new lines at the end of the deepest parent."""
    node, depth = doc, 0
    while depth < len(path) - 1 and isinstance(node.get(path[depth]), dict):
        node = node[path[depth]]
        depth += 1
    if path[depth] in node or getattr(node, "fa", None) is None or node.fa.flow_style():
        return None
    rendered = _render_value(value)
    if rendered is None:
        return None
    if depth == 0:
        indent, at = 0, len(_lines(text))
    else:
        parent_lc = _parent_of(doc, path[:depth]).lc.data[path[depth - 1]]
        key_indent = parent_lc[1]
        children = list(node.lc.data.values())
        indent = children[0][1] if children else key_indent + 2
        at = _block_end(text, key_indent, parent_lc[0] + 1)
    new = [f"{' ' * (indent + 2 * i)}{k}:\n" for i, k in enumerate(path[depth:-1])]
    new.append(f"{' ' * (indent + 2 * len(new))}{path[-1]}: {rendered}\n")
    lines = _lines(text)
    if at > 0 and at <= len(lines) and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at] + new + lines[at:])


def _parent_of(doc: Any, path: KeyPath) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def _expected(doc: Any, path: KeyPath, value: Any, *, remove: bool = False) -> Any:
    """The plain document ``doc`` would become after the edit."""
    plain = _plain(doc)
    node = plain
    for part in path[:-1]:
        node = node.setdefault(part, {}) if not remove else node.get(part, {})
    if remove:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = _plain(value)
    return plain


def _verified(candidate: str | None, expected: Any, file: str, fix: str) -> bool:
    if candidate is None:
        return False
    try:
        return bool(_plain(_parse(candidate, file, fix)) == expected)
    except Exception:
        return False


def edit_yaml_text(
    text: str, path: KeyPath, value: Any, *, file: str = "<yaml>", fix: str = ""
) -> str:
    """``text`` with ``path`` set to ``value``, changing as few bytes as possible."""
    doc = _parse(text, file, fix)
    if not isinstance(doc, dict):
        from dexto.errors import ConfigError

        raise ConfigError("expected a mapping at the top level", file=file, fix=fix)
    expected = _expected(doc, path, value)
    try:
        parent = _parent_of(doc, path)
    except (KeyError, TypeError):
        parent = None
    if isinstance(parent, dict) and path[-1] in parent:
        candidate = _replace_span(text, parent, path[-1], value)
    else:
        candidate = _insert_key(text, doc, path, value)
    if _verified(candidate, expected, file, fix):
        assert candidate is not None
        return candidate
    return _fallback_set(doc, path, value)


def _fallback_set(doc: Any, path: KeyPath, value: Any) -> str:
    from ruamel.yaml.comments import CommentedMap

    node = doc
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = CommentedMap()
        node = node[part]
    node[path[-1]] = value
    return render_yaml(doc)


def remove_yaml_text(
    text: str, path: KeyPath, *, file: str = "<yaml>", fix: str = ""
) -> str | None:
    """``text`` without ``path`` (None if it was absent); deletes only the key's own line."""
    doc = _parse(text, file, fix)
    try:
        parent = _parent_of(doc, path)
    except (KeyError, TypeError):
        return None
    if not isinstance(parent, dict) or path[-1] not in parent:
        return None
    expected = _expected(doc, path, None, remove=True)
    node: Any = parent
    kline, _, vline, vcol = node.lc.data[path[-1]]
    lines = _lines(text)
    if kline == vline and _span(lines[vline].rstrip("\r\n"), vcol) is not None:
        candidate = "".join(lines[:kline] + lines[kline + 1 :])
        if _verified(candidate, expected, file, fix):
            return candidate
    del parent[path[-1]]
    return render_yaml(doc)


# ---------------------------------------------------------------- file API


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except OSError as exc:
        raise path_error(path, exc, reading=True) from None


def set_yaml_values(
    path: Path,
    values: Mapping[Sequence[str], Any],
    *,
    fix: str = "",
    backup: bool = True,
    mode: int | None = None,
) -> None:
    """Set each key path to its value; everything outside the edited values is kept."""
    original = _read(path)
    text = original
    for key_path, value in values.items():
        text = edit_yaml_text(text, tuple(key_path), value, file=str(path), fix=fix)
    if text != original or not path.exists():
        atomic_write(path, text, backup=backup and path.exists(), mode=mode)


def remove_yaml_key(
    path: Path, key_path: Sequence[str], *, fix: str = "", backup: bool = True
) -> bool:
    """Delete one key path; return False (and write nothing) if it was absent."""
    new = remove_yaml_text(_read(path), tuple(key_path), file=str(path), fix=fix)
    if new is None:
        return False
    atomic_write(path, new, backup=backup)
    return True
