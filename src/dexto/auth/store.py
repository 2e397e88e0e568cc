"""The auth store ``$DEXTO_HOME/auth.json`` (SPEC §4): one entry per provider or reference name.

Shape: ``{"dexto": {"type": "api", "key": "dxk_…"}, "anthropic": {"type": "api", "key": "…"}}``;
entries may also be ``{"type": "oauth", "access", "refresh", "expires"}`` (expires: epoch ms) or
``{"type": "wellknown", "key", "token"}``. The file is 0600; reading warns when it is wider.

Writes go through ``update_auth_store`` (or ``set_entry`` / ``remove_entry``): under an exclusive
inter-process lock (``auth.json.lock``) the store is re-read and validated — a corrupt store is an
error and is never overwritten — changed, and replaced atomically with mode 0600. No backup copy
is kept (it would duplicate secrets); entry names are provider ids or reference names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dexto.config.files import atomic_write, file_lock, path_error
from dexto.errors import ConfigError

__all__ = [
    "STORE_MODE",
    "ApiEntry",
    "AuthEntry",
    "Entry",
    "OAuthEntry",
    "WellKnownEntry",
    "check_entry_name",
    "entry_secret",
    "parse_auth_store",
    "read_auth_store",
    "remove_entry",
    "render_auth_store",
    "set_entry",
    "update_auth_store",
    "write_auth_store",
]

STORE_MODE = 0o600
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
T = TypeVar("T")

log = logging.getLogger("dexto.auth")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr__(self) -> str:  # never show secrets
        return f"{type(self).__name__}(type={getattr(self, 'type', '?')!r}, …)"

    __str__ = __repr__


class ApiEntry(_Entry):
    type: Literal["api"]
    key: str = Field(min_length=1)


class OAuthEntry(_Entry):
    type: Literal["oauth"]
    access: str = Field(min_length=1)
    refresh: str = ""
    expires: int = 0  # epoch milliseconds; 0 = unknown


class WellKnownEntry(_Entry):
    type: Literal["wellknown"]
    key: str = Field(min_length=1)
    token: str = ""


AuthEntry = Annotated[ApiEntry | OAuthEntry | WellKnownEntry, Field(discriminator="type")]
_STORE = TypeAdapter(dict[str, AuthEntry])
Entry = ApiEntry | OAuthEntry | WellKnownEntry
Store = dict[str, Entry]


def entry_secret(entry: ApiEntry | OAuthEntry | WellKnownEntry) -> str:
    """The value to send as the credential for an entry."""
    if isinstance(entry, OAuthEntry):
        return entry.access
    if isinstance(entry, WellKnownEntry):
        return entry.token or entry.key
    return entry.key


def _entry_fix(file: str, name: str | None) -> str:
    if name is None or not _NAME.match(name):
        return f"repair the entry in {file} in an editor"
    return (
        f"`dexto auth remove {name}` removes it (then store the key again with `dexto auth "
        f"set {name}`, or `dexto login` for dexto), or repair it in {file} in an editor"
    )


def parse_auth_store(
    text: str, *, file: str, dropping: str | None = None
) -> dict[str, ApiEntry | OAuthEntry | WellKnownEntry]:
    """Parse and validate the store's text. An entry name given twice is an error (JSON would
    silently keep the last one, losing the other secret on the next write).

    ``dropping`` names an entry that is about to be removed: it is left out before validation,
    so removing a duplicated or invalid entry is how such a store is repaired.
    """
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs) if text.strip() else _Pairs()
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg})",
            file=file,
            line=exc.lineno,
            fix=f"repair the JSON in {file} in an editor, or move it aside and "
            f"store the keys again: mv {file} {file}.broken",
        ) from None
    if not isinstance(raw, _Pairs):
        raise ConfigError(
            "expected an object of named entries",
            file=file,
            fix=f"repair {file} in an editor, or move it aside: mv {file} {file}.broken",
        )
    top: dict[str, object] = {}
    for name, value in raw:
        if name == dropping:
            continue
        if name in top:
            raise ConfigError(
                f"the entry {name[:64]!r} is given twice (only one can be used)",
                file=file,
                field=name[:64],
                fix=f"delete the one you do not want in {file} in an editor, or "
                f"`dexto auth remove {name[:64]}` removes both",
            )
        top[name] = _plain_json(value)
    try:
        return dict(_STORE.validate_python(top))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        bad = str(first["loc"][0]) if first["loc"] else None
        # never echo the input: it may contain a secret
        raise ConfigError(
            first["msg"], file=file, field=loc or None, fix=_entry_fix(file, bad)
        ) from None


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (name, value) pairs in order, duplicates included."""


def _plain_json(value: object) -> object:
    """Nested objects parsed as ``_Pairs`` back into dicts (the last duplicate wins)."""
    if isinstance(value, _Pairs):
        return {k: _plain_json(v) for k, v in value}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    return value


_warned_wide: set[tuple[str, int]] = set()  # (path, mode) already warned about in this process


def _warn_if_wide(path: Path) -> bool:
    """Log a warning (never the contents) if ``path`` is group/other accessible; True if so.

    The warning is logged once per path and mode in a process: one command reads the store
    more than once (routing, then the request's key)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:  # missing or unreachable: reading it reports why
        return False
    if os.name == "posix" and mode & 0o077:
        seen = (str(path), mode)
        if seen not in _warned_wide:
            _warned_wide.add(seen)
            log.warning("%s is readable by others (mode %o); run `chmod 600 %s`", path, mode, path)
        return True
    return False


def read_auth_store(
    path: Path, *, dropping: str | None = None
) -> dict[str, ApiEntry | OAuthEntry | WellKnownEntry]:
    """Read and validate the store; a missing file is empty; a corrupt one is a ConfigError.
    ``dropping``: see ``parse_auth_store``."""
    _warn_if_wide(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(
            "file is not UTF-8 text",
            file=str(path),
            fix=f"repair {path} or move it away and log in again",
        ) from None
    except OSError as exc:
        raise path_error(path, exc, reading=True) from None
    return parse_auth_store(text, file=str(path), dropping=dropping)


def check_entry_name(name: str) -> str:
    """Entry names are lower-case ids (``anthropic``, ``dexto``, ``my-vllm-key``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"invalid auth-store name {name[:70]!r}",
            field="name",
            fix="use lower-case letters, digits, '.', '_' or '-' (max 64), "
            "e.g. anthropic or my-vllm-key",
        )
    return name


def render_auth_store(store: Store) -> str:
    """The JSON text of a store (entries in insertion order)."""
    return json.dumps({k: v.model_dump() for k, v in store.items()}, indent=2) + "\n"


def write_auth_store(path: Path, store: Store) -> None:
    """Replace the store atomically with mode 0600 (callers normally use ``update_auth_store``).

    If the existing file was wider than 0600, a warning is logged and the new file is 0600.
    """
    for name in store:
        check_entry_name(name)
    _warn_if_wide(path)
    atomic_write(path, render_auth_store(store), mode=STORE_MODE)


def update_auth_store(path: Path, change: Callable[[Store], T]) -> T:
    """Locked read-modify-write: ``change`` mutates the validated store in place.

    The store is written only if ``change`` altered it. A corrupt store raises ConfigError and
    is left as it is.
    """
    with file_lock(path):
        store = read_auth_store(path)
        before = render_auth_store(store)
        result = change(store)
        if render_auth_store(store) != before or (path.exists() and _is_wide(path)):
            write_auth_store(path, store)
        return result


def _is_wide(path: Path) -> bool:
    return os.name == "posix" and bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def set_entry(path: Path, name: str, entry: Entry) -> None:
    """Store ``entry`` under ``name`` (replacing any previous entry of that name)."""
    check_entry_name(name)

    def change(store: Store) -> None:
        store[name] = entry

    update_auth_store(path, change)


def remove_entry(path: Path, name: str) -> bool:
    """Remove the entry ``name`` — also when it is invalid or given twice, which is how such a
    store is repaired; False (and nothing written) if there was none."""
    with file_lock(path):
        kept = read_auth_store(path, dropping=name)  # every other entry must be valid
        try:
            raw = json.loads(path.read_text("utf-8"), object_pairs_hook=_Pairs)
        except FileNotFoundError:
            return False
        if not any(k == name for k, _ in raw):
            return False
        write_auth_store(path, kept)
        return True
