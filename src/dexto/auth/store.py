"""The auth store ``$DEXTO_HOME/auth.json`` (SPEC §4): one entry per provider or reference name.

Shape: ``{"dexto": {"type": "api", "key": "dxk_…"}, "anthropic": {"type": "api", "key": "…"}}``;
entries may also be ``{"type": "oauth", "access", "refresh", "expires"}`` (expires: epoch ms) or
``{"type": "wellknown", "key", "token"}``. The file is 0600; reading warns when it is wider.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dexto.errors import ConfigError

__all__ = [
    "ApiEntry",
    "AuthEntry",
    "OAuthEntry",
    "WellKnownEntry",
    "entry_secret",
    "parse_auth_store",
    "read_auth_store",
]

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


def entry_secret(entry: ApiEntry | OAuthEntry | WellKnownEntry) -> str:
    """The value to send as the credential for an entry."""
    if isinstance(entry, OAuthEntry):
        return entry.access
    if isinstance(entry, WellKnownEntry):
        return entry.token or entry.key
    return entry.key


def parse_auth_store(text: str, *, file: str) -> dict[str, ApiEntry | OAuthEntry | WellKnownEntry]:
    fix = f"repair or remove the entry in {file} (keys are set with `dexto auth set PROVIDER`)"
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg})", file=file, line=exc.lineno,
                          fix=fix) from None
    try:
        return dict(_STORE.validate_python(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        # never echo the input: it may contain a secret
        raise ConfigError(first["msg"], file=file, field=loc or None, fix=fix) from None


def read_auth_store(path: Path) -> dict[str, ApiEntry | OAuthEntry | WellKnownEntry]:
    """Read and validate the store; a missing file is empty; a corrupt one is a ConfigError."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        log.warning("%s is readable by others (mode %o); run `chmod 600 %s`",
                    path, stat.S_IMODE(st.st_mode), path)
    return parse_auth_store(path.read_text("utf-8"), file=str(path))
