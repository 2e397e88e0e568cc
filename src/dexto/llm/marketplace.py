"""The marketplace catalog (SPEC §8.2): the OpenRouter models list, cached on disk with a TTL.

Reading never raises into the caller and never blocks on the network: a missing or corrupt cache
yields an empty catalog whose state is ``missing`` (lookups answer ``unverified``). Refreshing is
explicit (``refresh_marketplace``), bounded by a short timeout, and keeps the old cache on error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dexto.config.files import atomic_write
from dexto.config.paths import DextoPaths

__all__ = [
    "DEFAULT_MODELS_URL",
    "DEFAULT_TTL_SECONDS",
    "MarketplaceCatalog",
    "MarketplaceModel",
    "ValidationStatus",
    "load_marketplace",
    "parse_models",
    "refresh_marketplace",
]

log = logging.getLogger("dexto.marketplace")

DEFAULT_MODELS_URL = "https://openrouter.ai/api/v1/models"
DEFAULT_TTL_SECONDS = 3600
CacheState = Literal["fresh", "stale", "missing"]
ValidationStatus = Literal["known", "unknown", "unverified"]

_TOKEN_SPLIT = re.compile(r"[-._\s]+")


def _per_million(value: Any) -> float | None:
    try:
        return round(float(value) * 1_000_000, 6)
    except (TypeError, ValueError):
        return None


def name_tokens(model_id: str) -> tuple[str, ...]:
    """Order-insensitive tokens of a model name (``claude-4.5-sonnet`` ≡ ``claude-sonnet-4-5``)."""
    return tuple(sorted(t for t in _TOKEN_SPLIT.split(model_id.lower()) if t))


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
        out.append(MarketplaceModel(
            id=row["id"],
            canonical_slug=str(row.get("canonical_slug") or row["id"]),
            name=str(row.get("name") or row["id"]),
            context_length=ctx if isinstance(ctx, int) else None,
            input_per_m=_per_million(pricing.get("prompt")),
            output_per_m=_per_million(pricing.get("completion")),
            max_completion_tokens=mct if isinstance(mct, int) else None,
            input_modalities=tuple(arch.get("input_modalities") or ()),
            supported_parameters=tuple(row.get("supported_parameters") or ()),
        ))
    return out


@dataclass
class MarketplaceCatalog:
    models: list[MarketplaceModel]
    state: CacheState
    fetched_at: float | None = None
    _by_id: dict[str, MarketplaceModel] = field(default_factory=dict, repr=False)
    _by_tokens: dict[tuple[str, tuple[str, ...]], str] | None = field(default=None, repr=False)
    _by_slug: dict[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {m.id: m for m in self.models}

    @classmethod
    def empty(cls) -> MarketplaceCatalog:
        return cls([], "missing")

    def get(self, model_id: str) -> MarketplaceModel | None:
        return self._by_id.get(model_id)

    def status(self, model_id: str) -> ValidationStatus:
        """``known`` if listed, ``unknown`` if a usable list lacks it, ``unverified`` if no list."""
        if model_id in self._by_id:
            return "known"
        base = model_id.split(":", 1)[0]
        if base != model_id and base in self._by_id:
            return "known"
        return "unverified" if self.state == "missing" or not self.models else "unknown"

    def match_native(self, vendor: str, native_id: str) -> str | None:
        """§3 step 2: find the marketplace ID whose id or canonical slug names ``native_id``."""
        if "/" in native_id:
            if native_id in self._by_id:
                return native_id
            return self._slug_index().get(native_id)
        return self._token_index().get((vendor, name_tokens(native_id)))

    def _slug_index(self) -> dict[str, str]:
        if self._by_slug is None:
            idx: dict[str, str] = {}
            for m in self.models:
                if ":" not in m.id:
                    idx.setdefault(m.canonical_slug, m.id)
            self._by_slug = idx
        return self._by_slug

    def _token_index(self) -> dict[tuple[str, tuple[str, ...]], str]:
        if self._by_tokens is None:
            idx: dict[tuple[str, tuple[str, ...]], str] = {}
            plain = [m for m in self.models if ":" not in m.id]
            for m in plain:  # ids first: they win over canonical slugs
                idx.setdefault((m.vendor, name_tokens(m.id.split("/", 1)[1])), m.id)
            for m in plain:
                slug_name = m.canonical_slug.split("/", 1)[-1]
                idx.setdefault((m.vendor, name_tokens(slug_name)), m.id)
            self._by_tokens = idx
        return self._by_tokens


def _cache_payload(models_json: Any, source: str) -> str:
    return json.dumps({"fetchedAt": time.time(), "source": source, "data": models_json})


def load_marketplace(
    paths: DextoPaths, *, ttl_seconds: float = DEFAULT_TTL_SECONDS, now: float | None = None
) -> MarketplaceCatalog:
    """Read the cache (never the network). Corrupt or missing → empty ``missing`` catalog."""
    path = paths.marketplace_cache
    try:
        raw = json.loads(path.read_text("utf-8"))
        fetched = float(raw.get("fetchedAt", 0))
        models = parse_models(raw.get("data"))
    except FileNotFoundError:
        return MarketplaceCatalog.empty()
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        log.warning("ignoring unreadable marketplace cache %s: %s", path, type(exc).__name__)
        return MarketplaceCatalog.empty()
    if not models:
        return MarketplaceCatalog.empty()
    age = (time.time() if now is None else now) - fetched
    return MarketplaceCatalog(models, "fresh" if age <= ttl_seconds else "stale", fetched)


def models_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("DEXTO_OPENROUTER_MODELS_URL", "").strip() or DEFAULT_MODELS_URL


def refresh_marketplace(
    paths: DextoPaths,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 3.0,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    force: bool = False,
) -> MarketplaceCatalog:
    """Fetch the list if the cache is stale (or ``force``); on any failure keep the old cache."""
    current = load_marketplace(paths, ttl_seconds=ttl_seconds)
    if current.state == "fresh" and not force:
        return current
    url = models_url(env)
    try:
        import httpx

        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
        payload = resp.json()
        rows = payload.get("data") if isinstance(payload, dict) else payload
        if not parse_models(rows):
            raise ValueError("empty or malformed models list")
    except Exception as exc:  # a refresh must never raise into the caller
        log.info("marketplace refresh from %s failed: %s", url, type(exc).__name__)
        return current
    try:
        atomic_write(paths.marketplace_cache, _cache_payload(rows, url))
    except OSError as exc:
        log.warning("could not write marketplace cache: %s", exc)
    return load_marketplace(paths, ttl_seconds=ttl_seconds)


def write_cache(paths: DextoPaths, rows: Iterable[Any], source: str = "test") -> Path:
    """Write a cache file from raw rows (used by tests, benchmarks and the offline demo)."""
    atomic_write(paths.marketplace_cache, _cache_payload(list(rows), source))
    return paths.marketplace_cache
