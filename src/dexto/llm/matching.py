"""Matching a native model ID to a marketplace ID by the vendors' naming (SPEC §3 step 2).

A name is reduced to a *key*: its word tokens (order-insensitive), its version numbers (in order;
``3-5`` ≡ ``3.5``) and its date (``20250219``, ``2025-04-14``, ``08-2024``, ``07-09``, ``0709``,
``-001`` revisions), all lower-cased. A native ID is looked up, first hit wins:

  1. ``vendor/native`` equals a listed ID (case-insensitive);
  2. it equals a listed canonical slug;
  3. the full key (with the date) equals a listed model's key (ID or canonical slug);
  4. the key without the date: a dated native ID matches a listing whose ID and slug carry no
     date (never a listing with a different date); an undated one (or a ``-latest`` alias,
     ``-chat-latest`` included) matches any date, and among several the single undated listing
     wins.

Variants (``:free``, ``:thinking``, …) never take part: a match is always a base model, so a
variant is never chosen silently. When several listings tie, none is chosen and the result says
which ones tied. Every hit is an ID taken from the list itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["MatchIndex", "MatchResult", "NameKey", "name_key"]

_SPLIT = re.compile(r"[-._\s/]+")
_YEAR = re.compile(r"^20\d\d$")
_MONTH = re.compile(r"^(0[1-9]|1[0-2])$")
K = TypeVar("K")
_DAY = re.compile(r"^(0[1-9]|[12]\d|3[01])$")


@dataclass(frozen=True, slots=True)
class NameKey:
    words: tuple[str, ...]
    versions: tuple[tuple[str, ...], ...]
    date: str | None
    latest: bool = False

    @property
    def loose(self) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        return (self.words, self.versions)


def name_key(name: str) -> NameKey:
    """The key of a model name (without vendor); see the module docstring."""
    toks = [t for t in _SPLIT.split(name.lower()) if t]
    words: list[str] = []
    versions: list[tuple[str, ...]] = []
    dates: list[str] = []
    latest = False
    run: list[str] = []
    i = 0

    def flush() -> None:
        if run:
            versions.append(tuple(run))
            run.clear()

    while i < len(toks):
        t = toks[i]
        if t.isdigit():
            date, used = _date_at(toks, i)
            if date is not None:
                flush()
                dates.append(date)
                i += used
                continue
            run.append(str(int(t)))
            i += 1
            continue
        flush()
        if t == "latest":
            latest = True
        else:
            words.append(t)
        i += 1
    flush()
    return NameKey(tuple(sorted(words)), tuple(versions), "".join(dates) or None, latest)


def _at(toks: list[str], i: int) -> str:
    return toks[i] if i < len(toks) else ""


def _date_at(toks: list[str], i: int) -> tuple[str | None, int]:
    """A date starting at token ``i`` (normalised) and how many tokens it spans."""
    t, nxt, nxt2 = toks[i], _at(toks, i + 1), _at(toks, i + 2)
    if len(t) == 8 and t.startswith("20"):  # 20250219
        return t, 1
    if _YEAR.match(t) and _MONTH.match(nxt) and _DAY.match(nxt2):  # 2025-04-14
        return t + nxt + nxt2, 3
    if _MONTH.match(t) and _YEAR.match(nxt):  # 08-2024 (Cohere)
        return nxt + t, 2
    if t.startswith("0") and _MONTH.match(t) and _DAY.match(nxt):  # 07-09, 06-05
        return t + nxt, 2
    if len(t) == 4 or (len(t) == 3 and t.startswith("0")):  # 0709, 2411, -001
        return t, 1
    return None, 0


@dataclass(frozen=True, slots=True)
class MatchResult:
    """``id`` when one listing matches; else ``None`` and, when useful, why not (``note``)."""

    id: str | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class _Listing:
    id: str
    date: str | None  # from the ID or the canonical slug


class MatchIndex:
    """Lookup tables over one models list, built once per list."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        """``rows``: ``(id, canonical_slug)`` pairs of the list."""
        self._ids: dict[str, str] = {}
        self._slugs: dict[str, list[str]] = {}
        self._full: dict[tuple[str, NameKey], list[str]] = {}
        self._loose: dict[tuple[str, tuple[object, ...]], list[_Listing]] = {}
        self._variants: dict[str, list[str]] = {}
        for mid, slug in rows:
            low = mid.lower()
            if ":" in low:
                self._variants.setdefault(low.split(":", 1)[0], []).append(mid)
                continue
            self._ids.setdefault(low, mid)
            _add(self._slugs, slug.lower(), mid)
            named = [
                (full.partition("/")[0], name_key(full.partition("/")[2]))
                for full in {low, slug.lower()}
            ]
            date = next((k.date for _, k in named if k.date), None)  # the row's date, if any
            for vendor, key in named:
                _add(self._full, (vendor, key), mid)
                lst = self._loose.setdefault((vendor, key.loose), [])
                if all(x.id != mid for x in lst):
                    lst.append(_Listing(mid, date))

    def match(self, vendor: str, native_id: str) -> MatchResult:
        low = native_id.lower()
        if "/" in low:  # already vendor-prefixed (groq's openai/gpt-oss-120b)
            vendor, _, low = low.partition("/")
        vendor = vendor.lower()
        full = f"{vendor}/{low}"
        if full in self._ids:
            return MatchResult(self._ids[full])
        slug_hits = self._slugs.get(full, [])
        if slug_hits:
            return _one(slug_hits, "its canonical slug")
        key = name_key(low)
        if key.date is not None and not key.latest:
            hits = self._full.get((vendor, key), [])
            if hits:
                return _one(hits, "its name and date")
        listings = self._loose.get((vendor, key.loose), [])
        if key.date is not None and not key.latest:
            listings = [x for x in listings if x.date is None]
        cands = sorted({x.id for x in listings})
        if len(cands) == 1:
            return MatchResult(cands[0])
        if len(cands) > 1:
            undated = sorted({x.id for x in listings if x.date is None})
            if len(undated) == 1:
                return MatchResult(undated[0])
            return MatchResult(None, "ambiguous in the marketplace list: " + ", ".join(cands))
        variants = self._variants.get(full)
        if variants:
            return MatchResult(
                None,
                "only the variant "
                + ", ".join(sorted(variants))
                + " is listed; variants are never chosen automatically",
            )
        return MatchResult(None)


def _add(index: dict[K, list[str]], key: K, mid: str) -> None:
    lst = index.setdefault(key, [])
    if mid not in lst:
        lst.append(mid)


def _one(hits: list[str], what: str) -> MatchResult:
    if len(hits) == 1:
        return MatchResult(hits[0])
    return MatchResult(
        None, f"ambiguous in the marketplace list by {what}: " + ", ".join(sorted(hits))
    )
