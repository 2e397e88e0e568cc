"""OAuth refresh (SPEC §4): each provider that issues OAuth tokens registers a refresher.

``ensure_fresh(path, name)`` returns the entry ``name``, refreshed first when it is an OAuth
entry that expires within ``margin_s`` seconds. The refresh runs under the auth-store lock and
re-reads the entry inside it, so when several processes race only the first one calls the
provider; the others see the new token. A provider without a registered refresher, or a failing
refresh, raises ``AuthFailedError`` whose fix names the command to run — never the token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from dexto.auth.store import Entry, OAuthEntry, Store, update_auth_store
from dexto.errors import AuthFailedError, DextoError

__all__ = [
    "DEFAULT_MARGIN_S",
    "OAuthRefresher",
    "ensure_fresh",
    "get_refresher",
    "needs_refresh",
    "register_refresher",
    "unregister_refresher",
]

DEFAULT_MARGIN_S = 300.0


@runtime_checkable
class OAuthRefresher(Protocol):
    """Exchanges an OAuth entry's refresh token for a new access token.

    ``refresh`` returns the replacement entry (``expires`` in epoch milliseconds) or raises any
    exception; it must not log the tokens.
    """

    def refresh(self, entry: OAuthEntry) -> OAuthEntry: ...


_REFRESHERS: dict[str, OAuthRefresher] = {}


def register_refresher(provider: str, refresher: OAuthRefresher) -> None:
    """Register the refresher used for auth-store entries named ``provider``."""
    _REFRESHERS[provider] = refresher


def unregister_refresher(provider: str) -> None:
    _REFRESHERS.pop(provider, None)


def get_refresher(provider: str) -> OAuthRefresher | None:
    return _REFRESHERS.get(provider)


def needs_refresh(entry: Entry, *, now_ms: int, margin_s: float = DEFAULT_MARGIN_S) -> bool:
    """True for an OAuth entry with a known expiry closer than ``margin_s`` (or past)."""
    return (
        isinstance(entry, OAuthEntry)
        and entry.expires > 0
        and entry.expires - now_ms <= margin_s * 1000
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def ensure_fresh(
    path: Path, name: str, *, margin_s: float = DEFAULT_MARGIN_S, now_ms: int | None = None
) -> Entry | None:
    """The entry ``name`` (None if absent), refreshed under the lock if it is about to expire."""
    from dexto.auth.store import read_auth_store

    entry = read_auth_store(path).get(name)
    now = _now_ms() if now_ms is None else now_ms
    if entry is None or not needs_refresh(entry, now_ms=now, margin_s=margin_s):
        return entry

    def change(store: Store) -> Entry | None:
        current = store.get(name)  # re-read under the lock: another process may have refreshed
        if current is None or not needs_refresh(current, now_ms=now, margin_s=margin_s):
            return current
        assert isinstance(current, OAuthEntry)
        store[name] = _refresh(name, current)
        return store[name]

    return update_auth_store(path, change)


def _refresh(name: str, entry: OAuthEntry) -> OAuthEntry:
    refresher = get_refresher(name)
    fix = f"sign in to {name} again (`dexto auth set {name}`)"
    if refresher is None or not entry.refresh:
        raise AuthFailedError(
            f"the OAuth token for {name} is expiring and cannot be refreshed here", fix=fix
        )
    try:
        fresh = refresher.refresh(entry)
    except DextoError:
        raise
    except Exception as exc:  # a provider's failure, translated once; no token in the message
        raise AuthFailedError(
            f"refreshing the OAuth token for {name} failed ({type(exc).__name__})", fix=fix
        ) from None
    if not isinstance(fresh, OAuthEntry):
        raise AuthFailedError(f"the refresher for {name} returned no OAuth entry", fix=fix)
    return fresh
