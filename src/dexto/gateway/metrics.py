"""Prometheus text exposition, written by hand (no client library needed).

Counters and the latency histogram are per worker process; ledger totals and active holds are
read from the database at scrape time, so they are the same whichever worker answers.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from dexto.gateway.db import Conn
from dexto.gateway.ledger import now_ms

__all__ = ["Metrics", "db_snapshot"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.upstream_errors: defaultdict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.counters: defaultdict[str, int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: defaultdict[str, float] = defaultdict(float)
        self._hist_count: defaultdict[str, int] = defaultdict(int)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(("route", route), ("status", str(status)))] += 1
        counts = self._hist.get(route)
        if counts is None:
            counts = self._hist[route] = [0] * (len(_BUCKETS) + 1)
        counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self._hist_sum[route] += seconds
        self._hist_count[route] += 1

    def upstream_error(self, kind: str) -> None:
        self.upstream_errors[(("kind", kind),)] += 1

    def inc(self, name: str, by: int = 1) -> None:
        self.counters[name] += by

    def render(self, snapshot: dict[str, int] | None) -> str:
        out: list[str] = []
        p = "dexto_gateway_"
        out += [
            f"# HELP {p}requests_total HTTP requests answered.",
            f"# TYPE {p}requests_total counter",
        ]
        for labels, n in sorted(self.requests.items()):
            out.append(f"{p}requests_total{_labels(labels)} {n}")
        out += [
            f"# HELP {p}request_duration_seconds Time to answer (to the last byte for streams).",
            f"# TYPE {p}request_duration_seconds histogram",
        ]
        for route, counts in sorted(self._hist.items()):
            cum = 0
            for bound, c in zip((*_BUCKETS, float("inf")), counts, strict=True):
                cum += c
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'{p}request_duration_seconds_bucket{{route="{route}",le="{le}"}} {cum}')
            out.append(
                f'{p}request_duration_seconds_sum{{route="{route}"}} {self._hist_sum[route]}'
            )
            out.append(
                f'{p}request_duration_seconds_count{{route="{route}"}} {self._hist_count[route]}'
            )
        out += [
            f"# HELP {p}upstream_errors_total Upstream failures by kind.",
            f"# TYPE {p}upstream_errors_total counter",
        ]
        for labels, n in sorted(self.upstream_errors.items()):
            out.append(f"{p}upstream_errors_total{_labels(labels)} {n}")
        for name, help_text in _COUNTERS.items():
            out += [f"# HELP {p}{name} {help_text}", f"# TYPE {p}{name} counter"]
            out.append(f"{p}{name} {self.counters.get(name, 0)}")
        if snapshot is not None:
            for name, (kind, help_text) in _DB_GAUGES.items():
                out += [f"# HELP {p}{name} {help_text}", f"# TYPE {p}{name} {kind}"]
                out.append(f"{p}{name} {snapshot.get(name, 0)}")
        return "\n".join(out) + "\n"


_COUNTERS = {
    "holds_placed_total": "Holds placed at admission (this worker).",
    "holds_released_total": "Holds released without a charge (this worker).",
    "holds_settled_total": "Holds replaced by a charge (this worker).",
    "holds_expired_total": "Expired holds swept (this worker).",
    "insufficient_credits_total": "Requests refused with 402 (this worker).",
    "rate_limited_total": "Requests refused with 429 (this worker).",
    "estimated_charges_total": "Charges settled from an estimate (this worker).",
    "upstream_bad_cost_total": "Upstream usage.cost not a finite number in range (this worker).",
    "settle_retries_total": "Settlement attempts that failed and were retried (this worker).",
    "settle_deferred_total": "Settlements deferred to background retry (this worker).",
    "holds_swept_settled_total": "Expired holds with delivered output settled (this worker).",
}

_DB_GAUGES = {
    "holds_active": ("gauge", "Holds currently counting against balances (database)."),
    "holds_active_micros": ("gauge", "Micro-USD currently held (database)."),
    "ledger_charged_micros": ("gauge", "Total micro-USD charged, all time (database)."),
    "ledger_credited_micros": ("gauge", "Total micro-USD credited, all time (database)."),
    "ledger_written_off_micros": ("gauge", "Total micro-USD written off by the overdraft floor."),
    "ledger_entries": ("gauge", "Ledger rows (database)."),
}


def db_snapshot(conn: Conn) -> dict[str, int]:
    now = now_ms()
    with conn.read():
        h = conn.one(
            "SELECT COUNT(*), COALESCE(SUM(amount_micros), 0) FROM holds WHERE expires_at > ?",
            (now,),
        )
        lg = conn.one(
            "SELECT COUNT(*),"
            " COALESCE(SUM(CASE WHEN amount_micros < 0 THEN -amount_micros ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN amount_micros > 0 THEN amount_micros ELSE 0 END), 0),"
            " COALESCE(SUM(written_off_micros), 0) FROM ledger"
        )
    assert h is not None and lg is not None
    return {
        "holds_active": int(h[0]),
        "holds_active_micros": int(h[1]),
        "ledger_entries": int(lg[0]),
        "ledger_charged_micros": int(lg[1]),
        "ledger_credited_micros": int(lg[2]),
        "ledger_written_off_micros": int(lg[3]),
    }
