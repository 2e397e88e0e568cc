"""``dexto gateway reconcile``: estimated charges, write-offs and swept holds, with totals."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register_reconcile"]


def register_reconcile(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile", help="list estimated charges, written-off amounts and swept holds"
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="sqlite:///path or postgresql://… "
        "(default $DEXTO_GATEWAY_DB or sqlite:///$DEXTO_HOME/gateway.db)",
    )
    p.add_argument(
        "--since", metavar="WHEN", help="only entries since a date/time (ISO) or age (24h, 7d)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_reconcile)


def _reconcile(ns: argparse.Namespace) -> int:
    from dexto.cli._output import print_error, print_json
    from dexto.errors import DextoError
    from dexto.gateway.admin import open_db, require_schema
    from dexto.gateway.reconcile import parse_since, reconcile_report
    from dexto.gateway.settings import GatewaySettings

    try:
        since = parse_since(ns.since)
        url = GatewaySettings.resolve({"db_url": ns.db}).db_url
        db, conn = open_db(url)
        try:
            require_schema(conn)
            report = reconcile_report(conn, since)
        finally:
            db.close_all()
    except DextoError as err:
        return print_error(err, as_json=ns.json)
    if ns.json:
        print_json(report)
    else:
        _print_human(report)
    return 0


def _print_human(report: dict[str, Any]) -> None:
    t = report["totals"]
    print(f"since: {report['since'] or 'the beginning'}")
    print(f"estimated charges: {t['estimatedCount']}  total ${t['estimatedUsd']}")
    for reason, v in t["estimatedByReason"].items():
        print(f"  {reason}: {v['count']}  ${v['usd']}")
    print(f"written off: {t['writtenOffCount']}  total ${t['writtenOffUsd']}")
    print(
        f"holds swept: {t['sweptSettledCount']} settled (${t['sweptSettledUsd']}), "
        f"{t['sweptReleasedCount']} released (holds ${t['sweptReleasedHoldUsd']})"
    )
    for title, rows, cols in (
        ("estimated", report["estimatedCharges"], ("ts", "requestId", "chargedUsd", "reason")),
        ("written off", report["writtenOff"], ("ts", "requestId", "costUsd", "writtenOffUsd")),
        ("swept", report["sweptHolds"], ("ts", "requestId", "action", "chargedUsd", "reason")),
    ):
        if rows:
            print(f"\n{title}:")
            for row in rows:
                print("  " + "  ".join(str(row[c]) for c in cols))
