"""The marketplace catalog (SPEC §8.2): the OpenRouter models list, cached on disk with a TTL.

Which list answers (``source``): a download made by this process (``live``) > the on-disk cache,
fresh or stale (``cache``) > the dated snapshot bundled in the package (``bundled``, parsed only
when no cache exists). Reading never raises into the caller and never blocks on the network.
Refreshing is explicit (``refresh_marketplace``), bounded by a short timeout, and keeps the old
list on error; a failed attempt is recorded next to the cache and, unless forced, not retried for
``RETRY_AFTER_SECONDS`` (so an offline machine does not wait for the timeout on every call).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from dexto._url import redact_url
from dexto.config.files import atomic_write
from dexto.config.paths import DextoPaths
from dexto.errors import DextoError
from dexto.llm.matching import MatchIndex, MatchResult

__all__ = [
    "RETRY_AFTER_SECONDS",
    "DEFAULT_MODELS_URL",
    "MarketplaceUnavailableError",
    "DEFAULT_TTL_SECONDS",
    "MarketplaceCatalog",
    "MarketplaceModel",
    "ValidationStatus",
    "bundled_catalog",
    "load_marketplace",
    "parse_models",
    "refresh_marketplace",
]

log = logging.getLogger("dexto.marketplace")

DEFAULT_MODELS_URL = "https://openrouter.ai/api/v1/models"
DEFAULT_TTL_SECONDS = 3600
RETRY_AFTER_SECONDS = 600
_MEMO_MAX = 4096
CacheState = Literal["fresh", "stale", "bundled", "missing"]
ListSource = Literal["live", "cache", "bundled", "none"]
ValidationStatus = Literal["known", "unknown", "unverified"]


def _per_million(value: Any) -> float | None:
    try:
        return round(float(value) * 1_000_000, 6)
    except (TypeError, ValueError):
        return None


class MarketplaceUnavailableError(DextoError):
    """An explicit refresh (``dexto models --refresh``) could not get the list."""

    code = "MARKETPLACE_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class MarketplaceModel:
    id: str
    canonical_slug: str
    name: str
    context_length: int | None
    input_per_m: float | None
    output_per_m: float | None
    max_completion_tokens: int | None = None
    input_modalities: tuple[str, ...] = ()
    supported_parameters: tuple[str, ...] = ()
    cache_read_per_m: float | None = None
    cache_write_per_m: float | None = None
    expiration_date: str | None = None

    @property
    def vendor(self) -> str:
        return self.id.split("/", 1)[0]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_models(payload: Any) -> list[MarketplaceModel]:
    """Parse a ``GET /api/v1/models`` body (``{"data": [...]}`` or a bare list); skip bad rows."""
    rows = payload.get("data") if isinstance(payload, dict) else payload
    out: list[MarketplaceModel] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or "/" not in row["id"]:
            continue
        pricing = _mapping(row.get("pricing"))
        top = _mapping(row.get("top_provider"))
        arch = _mapping(row.get("architecture"))
        ctx = row.get("context_length")
        mct = top.get("max_completion_tokens")
        out.append(
            MarketplaceModel(
                id=row["id"],
                canonical_slug=str(row.get("canonical_slug") or row["id"]),
                name=str(row.get("name") or row["id"]),
                context_length=ctx if isinstance(ctx, int) else None,
                input_per_m=_per_million(pricing.get("prompt")),
                output_per_m=_per_million(pricing.get("completion")),
                max_completion_tokens=mct if isinstance(mct, int) else None,
                input_modalities=tuple(arch.get("input_modalities") or ()),
                supported_parameters=tuple(row.get("supported_parameters") or ()),
                cache_read_per_m=_per_million(pricing.get("input_cache_read")),
                cache_write_per_m=_per_million(pricing.get("input_cache_write")),
                expiration_date=str(row["expiration_date"]) if row.get("expiration_date") else None,
            )
        )
    return out


@dataclass
class MarketplaceCatalog:
    models: list[MarketplaceModel]
    state: CacheState
    fetched_at: float | None = None
    source: ListSource = "cache"
    snapshot_date: str | None = None  # the bundled snapshot's recorded date
    _by_id: dict[str, MarketplaceModel] = field(default_factory=dict, repr=False)
    _by_lower: dict[str, str] | None = field(default=None, repr=False)
    _index: MatchIndex | None = field(default=None, repr=False)
    _memo: dict[object, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {m.id: m for m in self.models}
        if not self.models:
            self.source = "none"

    @classmethod
    def empty(cls) -> MarketplaceCatalog:
        return cls([], "missing", source="none")

    def get(self, model_id: str) -> MarketplaceModel | None:
        return self._by_id.get(model_id)

    def get_ci(self, model_id: str) -> MarketplaceModel | None:
        """``get`` ignoring case."""
        hit = self._by_id.get(model_id)
        if hit is not None:
            return hit
        if self._by_lower is None:
            self._by_lower = {k.lower(): k for k in self._by_id}
        real = self._by_lower.get(model_id.lower())
        return self._by_id[real] if real is not None else None

    def status(self, model_id: str) -> ValidationStatus:
        """``known`` if listed, ``unknown`` if a usable list lacks it, ``unverified`` if no list."""
        if model_id in self._by_id:
            return "known"
        base = model_id.split(":", 1)[0]
        if base != model_id and base in self._by_id:
            return "known"
        return "unverified" if self.state == "missing" or not self.models else "unknown"

    def match(self, vendor: str, native_id: str) -> MatchResult:
        """§3 step 2 (see ``dexto.llm.matching``): the listed ID naming ``native_id``."""
        key = (vendor, native_id)
        hit = self._memo.get(key)
        if hit is None:
            if self._index is None:
                self._index = MatchIndex((m.id, m.canonical_slug) for m in self.models)
            hit = self.remember(key, self._index.match(vendor, native_id))
        return hit  # type: ignore[no-any-return]

    def remember(self, key: object, value: Any) -> Any:
        """Memoise a lookup on this list (bounded: cleared past ``_MEMO_MAX`` entries)."""
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[key] = value
        return value

    def recall(self, key: object) -> Any:
        return self._memo.get(key)

    def match_native(self, vendor: str, native_id: str) -> str | None:
        return self.match(vendor, native_id).id

    def describe(self) -> dict[str, Any]:
        """``{"state", "source", "count", …}`` for ``dexto models`` and the catalog answer."""
        out: dict[str, Any] = {
            "state": self.state,
            "source": self.source,
            "count": len(self.models),
        }
        if self.snapshot_date:
            out["snapshotDate"] = self.snapshot_date
        if self.fetched_at:
            out["fetchedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.fetched_at))
        return out


@cache
def bundled_catalog() -> MarketplaceCatalog:
    """The bundled snapshot as a catalog (parsed once per process, on first use)."""
    from dexto.llm.snapshot import load_bundled

    snap = load_bundled()
    models = parse_models(snap.rows)
    if not models:
        return MarketplaceCatalog.empty()
    return MarketplaceCatalog(models, "bundled", source="bundled", snapshot_date=snap.date)


def _cache_payload(models_json: Any, source: str) -> str:
    return json.dumps({"fetchedAt": time.time(), "source": source, "data": models_json})


def load_marketplace(
    paths: DextoPaths,
    *,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    now: float | None = None,
    bundled: bool = True,
) -> MarketplaceCatalog:
    """Read the cache (never the network). Corrupt or missing → the bundled snapshot (or, with
    ``bundled=False``, an empty ``missing`` catalog)."""
    path = paths.marketplace_cache
    fallback = bundled_catalog if bundled else MarketplaceCatalog.empty
    try:
        raw = json.loads(path.read_text("utf-8"))
        fetched = float(raw.get("fetchedAt", 0))
        models = parse_models(raw.get("data"))
    except FileNotFoundError:
        return fallback()
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        log.warning("ignoring unreadable marketplace cache %s: %s", path, type(exc).__name__)
        return fallback()
    if not models:
        return fallback()
    age = (time.time() if now is None else now) - fetched
    return MarketplaceCatalog(models, "fresh" if age <= ttl_seconds else "stale", fetched)


def models_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("DEXTO_OPENROUTER_MODELS_URL", "").strip() or DEFAULT_MODELS_URL


def _failure_file(paths: DextoPaths) -> Path:
    return paths.marketplace_cache.with_name("openrouter-models.refresh-failed.json")


def _recent_failure(paths: DextoPaths, url: str, now: float) -> bool:
    """Whether a refresh from ``url`` failed less than ``RETRY_AFTER_SECONDS`` ago (URLs are
    compared redacted, as they are recorded)."""
    try:
        raw = json.loads(_failure_file(paths).read_text("utf-8"))
        return bool(
            raw.get("url") == redact_url(url) and 0 <= now - float(raw["at"]) < RETRY_AFTER_SECONDS
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _record_failure(paths: DextoPaths, url: str, why: str) -> None:
    try:
        atomic_write(
            _failure_file(paths),
            json.dumps({"at": time.time(), "url": redact_url(url), "error": why}),
        )
    except (OSError, DextoError) as exc:
        log.info("could not record the failed refresh: %s", type(exc).__name__)


def refresh_marketplace(
    paths: DextoPaths,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 3.0,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    force: bool = False,
    strict: bool = False,
) -> MarketplaceCatalog:
    """Fetch the list if the cache is not fresh (or ``force``); on failure keep the old list.

    A non-forced refresh is skipped for ``RETRY_AFTER_SECONDS`` after a failed attempt at the
    same URL. With ``strict`` a failure raises ``MarketplaceUnavailableError`` instead.
    """
    current = load_marketplace(paths, ttl_seconds=ttl_seconds)
    if current.state == "fresh" and not force:
        return current
    url = models_url(env)
    if not force and _recent_failure(paths, url, time.time()):
        return current
    try:
        import httpx

        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
        payload = resp.json()
        rows = payload.get("data") if isinstance(payload, dict) else payload
        if not parse_models(rows):
            raise ValueError("empty or malformed models list")
    except Exception as exc:  # a refresh must never raise into the caller unless strict
        why = _why(exc)
        log.info("marketplace refresh from %s failed: %s", redact_url(url), why)
        _record_failure(paths, url, why)
        if strict:
            raise MarketplaceUnavailableError(
                f"could not refresh the marketplace list from {redact_url(url)}: {why}",
                fix="check the network (or DEXTO_OPENROUTER_MODELS_URL) and retry; without "
                "--refresh dexto keeps using the "
                + ("cached" if current.source == "cache" else "bundled")
                + " list",
            ) from None
        return current
    _failure_file(paths).unlink(missing_ok=True)
    try:
        atomic_write(paths.marketplace_cache, _cache_payload(rows, redact_url(url)))
    except (OSError, DextoError) as exc:
        log.warning("could not write marketplace cache: %s", exc)
        return MarketplaceCatalog(parse_models(rows), "fresh", time.time(), source="live")
    fresh = load_marketplace(paths, ttl_seconds=ttl_seconds)
    if fresh.source == "cache":  # never relabel the shared bundled catalog
        fresh.source = "live"
    return fresh


def _why(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return "unreachable"
    if isinstance(exc, ValueError):
        return "not a models list"
    return type(exc).__name__


def write_cache(paths: DextoPaths, rows: Iterable[Any], source: str = "test") -> Path:
    """Write a cache file from raw rows (used by tests, benchmarks and the offline demo)."""
    atomic_write(paths.marketplace_cache, _cache_payload(list(rows), source))
    return paths.marketplace_cache
