"""Registry drift report (``dexto models audit``): the curated registry against the marketplace
list (cache, else the bundled snapshot).

- ``retired``: curated models whose marketplace ID is no longer listed;
- ``expiring``: curated models whose listing carries an expiration date;
- ``changed``: curated models of the listing's own vendor (not resellers such as groq, whose
  prices and limits are their own) whose input/output price (USD per million tokens) or context
  window differs from the listing;
- ``uncurated``: base models (no ``:variant``) of the routeable vendors that no curated model names.
"""

from __future__ import annotations

from typing import Any

from dexto.llm.marketplace import MarketplaceCatalog
from dexto.llm.providers import PROVIDERS
from dexto.llm.registry import Registry

__all__ = ["audit_registry", "render_audit"]

_FIELDS = (
    ("inputPerM", "input_per_m", "input_per_m"),
    ("outputPerM", "output_per_m", "output_per_m"),
    ("contextWindow", "context_window", "context_length"),
)


def _close(a: float | int | None, b: float | int | None) -> bool:
    if a is None or b is None:
        return True  # nothing to compare
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))


def audit_registry(registry: Registry, market: MarketplaceCatalog) -> dict[str, Any]:
    retired: list[dict[str, Any]] = []
    expiring: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    curated_ids: set[str] = set()
    for m in registry.all():
        if not m.marketplace_id:
            continue
        curated_ids.add(m.marketplace_id)
        row = {"provider": m.provider, "model": m.id, "marketplaceId": m.marketplace_id}
        listed = market.get(m.marketplace_id)
        if listed is None:
            retired.append(row)
            continue
        if listed.expiration_date:
            expiring.append({**row, "expirationDate": listed.expiration_date})
        if PROVIDERS[m.provider].marketplace_vendor != listed.vendor:
            continue
        diffs = {}
        for label, reg_attr, mk_attr in _FIELDS:
            ours = getattr(m.pricing if label != "contextWindow" else m, reg_attr)
            theirs = getattr(listed, mk_attr)
            if not _close(ours, theirs):
                diffs[label] = {"registry": ours, "marketplace": theirs}
        if diffs:
            changed.append({**row, "changes": diffs})
    vendors = {
        p.marketplace_vendor for p in PROVIDERS.values() if p.routeable and p.marketplace_vendor
    }
    uncurated = [
        {
            "marketplaceId": x.id,
            "name": x.name,
            "contextWindow": x.context_length,
            "inputPerM": x.input_per_m,
            "outputPerM": x.output_per_m,
        }
        for x in market.models
        if x.vendor in vendors and ":" not in x.id and x.id not in curated_ids
    ]
    return {
        "marketplace": market.describe(),
        "retired": retired,
        "expiring": expiring,
        "changed": changed,
        "uncurated": uncurated,
    }


def render_audit(report: dict[str, Any]) -> str:
    mk = report["marketplace"]
    when = mk.get("snapshotDate") or mk.get("fetchedAt") or "?"
    out = [
        f"Registry audit against the marketplace list ({mk['source']}, {when}, "
        f"{mk['count']} models)"
    ]
    out.append(f"\nRetired — curated but no longer listed ({len(report['retired'])}):")
    out += [f"  {r['provider']}/{r['model']}  ({r['marketplaceId']})" for r in report["retired"]]
    out.append(f"\nExpiring ({len(report['expiring'])}):")
    out += [
        f"  {r['provider']}/{r['model']}  ({r['marketplaceId']}) expires {r['expirationDate']}"
        for r in report["expiring"]
    ]
    out.append(f"\nChanged — price or context differs ({len(report['changed'])}):")
    for r in report["changed"]:
        parts = ", ".join(
            f"{k} {v['registry']} → {v['marketplace']}" for k, v in r["changes"].items()
        )
        out.append(f"  {r['provider']}/{r['model']}: {parts}")
    out.append(f"\nNot curated — listed models of routeable vendors ({len(report['uncurated'])}):")
    out += [f"  {r['marketplaceId']}" for r in report["uncurated"]]
    return "\n".join(out)
