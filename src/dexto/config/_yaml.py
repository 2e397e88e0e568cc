"""YAML reading with line numbers, and pydantic errors turned into file/line/field errors.

A document whose aliases (``*name``) would expand to more than ``MAX_EXPANDED_NODES`` values, or
that refers to itself, is refused: walking it (validation, comparison) would not finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dexto.errors import ConfigError

__all__ = [
    "MAX_EXPANDED_NODES",
    "config_error_from_validation",
    "line_of",
    "load_yaml_text",
    "not_utf8",
    "read_yaml",
]

#: The most values (mappings, sequences, keys and scalars) a document may hold once its aliases
#: are expanded, when it uses aliases.
MAX_EXPANDED_NODES = 100_000


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.Composer = _composer_class()
    return y


def _composer_class() -> type[Any]:
    """ruamel's composer, refusing a document whose node graph has a cycle: ruamel would
    construct an alias inside the value it names as None (``a: &x [*x]`` → ``{"a": [None]}``)."""
    from ruamel.yaml.composer import Composer

    class _Composer(Composer):
        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _refuse_cycles(node)
            return node

    return _Composer


def _refuse_cycles(root: Any) -> None:
    """Raise ``_Refused`` (with the line of the value) if an alias sits inside the value it
    names; each node is visited once."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    done: set[int] = set()
    open_: set[int] = set()

    def visit(node: Any) -> None:
        if not isinstance(node, MappingNode | SequenceNode) or id(node) in done:
            return
        if id(node) in open_:
            raise _Refused(
                "an alias (*name) refers to the value that contains it",
                line=node.start_mark.line + 1,
            )
        open_.add(id(node))
        if isinstance(node, SequenceNode):
            children = list(node.value)
        else:
            children = [part for pair in node.value for part in pair]
        for child in children:
            visit(child)
        open_.discard(id(node))
        done.add(id(node))

    visit(root)


def load_yaml_text(text: str, *, file: str, fix: str) -> Any:
    """Parse YAML (round-trip: comments and positions kept); syntax errors name the line."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        doc = _yaml().load(text)
    except _Refused as exc:
        raise _refusal(exc, file) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc.context}", file=file, line=line, fix=fix
        ) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=file, fix=fix) from None
    _check_expansion(doc, file)
    return doc


class _Refused(Exception):
    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _refusal(exc: _Refused, file: str) -> ConfigError:
    return ConfigError(
        str(exc),
        file=file,
        line=exc.line,
        fix=f"replace the aliases in {file} with the values they stand for, or move the "
        f"file aside: mv {file} {file}.broken",
    )


def _check_expansion(doc: Any, file: str) -> None:
    """Refuse ``doc`` when its aliases expand past ``MAX_EXPANDED_NODES`` or form a cycle."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    shared = False

    def size(node: Any) -> int:
        nonlocal shared
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            shared = True
            return sizes[key]
        if key in open_:
            raise _Refused("an alias (*name) refers to the value that contains it")
        open_.add(key)
        total = 1
        for child in [*node.keys(), *node.values()] if isinstance(node, dict) else node:
            total += size(child)
            if total > MAX_EXPANDED_NODES and shared:
                raise _Refused(
                    f"its aliases (*name) expand to more than {MAX_EXPANDED_NODES} values"
                )
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        size(doc)
    except _Refused as exc:
        raise _refusal(exc, file) from None


def not_utf8(path: Path) -> ConfigError:
    """The error for a file that is not UTF-8 text."""
    return ConfigError("file is not UTF-8 text", file=str(path), fix="save the file as UTF-8 text")


def read_yaml(path: Path, *, fix: str, missing_fix: str | None = None) -> Any:
    """Parse the YAML file at ``path``. ``fix`` is for problems in its content; a file that is
    missing (``missing_fix``, default: check the path), a directory, unreadable or not UTF-8 gets
    a fix naming that problem instead."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found",
            file=str(path),
            fix=missing_fix or "check the path; the file does not exist",
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            "is a directory, not a YAML file",
            file=str(path),
            fix="pass the path of the .yml file itself, not its directory",
        ) from None
    except PermissionError:
        raise ConfigError(
            "permission denied: the file cannot be read",
            file=str(path),
            fix=f"make it readable: chmod u+r {path}",
        ) from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except OSError as exc:
        from dexto.config.files import path_error

        raise path_error(path, exc, reading=True) from None
    return load_yaml_text(text, file=str(path), fix=fix)


def line_of(doc: Any, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node on ``loc`` that still exists in ``doc``."""
    line: int | None = None
    node = doc
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                pos = lc.key(part) if isinstance(part, str) else lc.item(part)
                line = pos[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def config_error_from_validation(
    exc: ValidationError, doc: Any, *, file: str, fix: str, prefix: Sequence[str] = ()
) -> ConfigError:
    """The first pydantic error as a ConfigError naming file, line and dotted field path."""
    first = exc.errors()[0]
    loc = [*prefix, *first["loc"]]
    field = ".".join(str(p) for p in loc) or None
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return ConfigError(msg, file=file, field=field, line=line_of(doc, loc), fix=fix)
