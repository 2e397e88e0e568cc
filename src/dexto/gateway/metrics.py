"""Prometheus metrics (prometheus_client) that add up across worker processes.

With one worker, each ``Metrics`` keeps its own registry in memory. With ``--workers N`` the
runner sets ``PROMETHEUS_MULTIPROC_DIR`` (see :func:`multiprocess_dir`) before the workers start:
every worker writes its counters and histograms to files there, and a scrape of any worker sums
all of them (prometheus_client's multiprocess mode). Ledger totals and active holds are read from
the database at scrape time, so they are the same whichever worker answers.

Adding a counter is one line in :data:`COUNTERS` (name → help, label names), then
``state.metrics.inc("name_total")`` (with ``label=value`` keywords when it has labels).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from dexto.gateway.asgi import Receive, Scope, Send
from dexto.gateway.db import Conn
from dexto.gateway.ledger import now_ms

__all__ = ["COUNTERS", "Metrics", "db_snapshot", "multiprocess_dir"]

PREFIX = "dexto_gateway_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_HELP = "Time to answer (to the last byte for streams)."
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# name (without the prefix) → (help, label names). One line per counter.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "requests_total": ("HTTP requests answered, by route and status.", ("route", "status")),
    "upstream_errors_total": ("Upstream failures by kind.", ("kind",)),
    "holds_placed_total": ("Holds placed at admission.", ()),
    "holds_released_total": ("Holds released without a charge.", ()),
    "holds_settled_total": ("Holds replaced by a charge.", ()),
    "holds_expired_total": ("Expired holds swept.", ()),
    "insufficient_credits_total": ("Requests refused with 402.", ()),
    "rate_limited_total": ("Requests refused with 429.", ()),
    "estimated_charges_total": ("Charges settled from an estimate.", ()),
    "ratelimit_bypassed_total": (
        "Rate-limit checks skipped because Redis failed (fail-open), by reason.",
        ("reason",),
    ),
    "db_unavailable_total": ("Requests answered 503 because the database was unavailable.", ()),
    "upstream_bad_cost_total": ("Upstream usage.cost not a finite number in range.", ()),
    "settle_retries_total": ("Settlement attempts that failed and were retried.", ()),
    "settle_deferred_total": ("Settlements deferred to background retry.", ()),
    "settle_spool_failed_total": ("Deferred settlements that could not be spooled to disk.", ()),
    "settle_spool_replayed_total": ("Spooled settlements of dead workers replayed.", ()),
    "stream_relay_errors_total": (
        "Streams whose relay raised inside the gateway (settled as relayed, not released).",
        (),
    ),
    "holds_swept_settled_total": ("Expired holds with delivered output settled.", ()),
    "reservations_placed_total": ("Worker reservations placed (one hold each).", ()),
    "reserved_admissions_total": (
        "Non-streaming requests admitted on a worker reservation (no database step).",
        (),
    ),
}

_DB_GAUGES = {
    "holds_active": ("gauge", "Holds currently counting against balances (database)."),
    "holds_active_micros": ("gauge", "Micro-USD currently held (database)."),
    "ledger_charged_micros": ("gauge", "Total micro-USD charged, all time (database)."),
    "ledger_credited_micros": ("gauge", "Total micro-USD credited, all time (database)."),
    "ledger_written_off_micros": ("gauge", "Total micro-USD written off by the overdraft floor."),
    "ledger_entries": ("gauge", "Ledger rows (database)."),
}


class Metrics:
    """The gateway's counters and request-duration histogram.

    In one process (no :data:`MULTIPROC_ENV`), the hot path only adds to plain integers; they
    are turned into prometheus_client metric families when scraped (:class:`_LocalCollector`,
    same names, help, labels and text as prometheus_client's own objects). In multiprocess mode
    every count goes to prometheus_client's per-worker files as it happens.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.local = not os.environ.get(MULTIPROC_ENV)
        self._counts: dict[tuple[str, tuple[str, ...]], int] = {}
        self._durations: dict[str, list[float]] = {}  # route → bucket counts…, +Inf, sum
        self._counters: dict[str, Counter] = {}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        # hot paths: bound methods looked up once
        self._answered: dict[tuple[str, int], tuple[Callable[[], None], Callable[[float], None]]]
        self._answered = {}
        self._plain_inc: dict[str, Callable[[int], None]] = {}
        if self.local:
            self.registry.register(_LocalCollector(self))
            return
        self._counters = {
            name: Counter(PREFIX + name, help_text, labels, registry=self.registry)
            for name, (help_text, labels) in COUNTERS.items()
        }
        self._duration = Histogram(
            PREFIX + "request_duration_seconds",
            DURATION_HELP,
            ("route",),
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def _child(self, name: str, values: tuple[str, ...]) -> Any:
        key = (name, values)
        child = self._children.get(key)
        if child is None:
            metric = self._duration if name == "" else self._counters[name]
            child = metric.labels(*values) if values else metric
            self._children[key] = child
        return child

    def request(self, route: str, status: int, seconds: float) -> None:
        if self.local:
            key = ("requests_total", (route, str(status)))
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1
            d = self._durations.get(route)
            if d is None:
                d = self._durations[route] = [0.0] * (len(_BUCKETS) + 2)
            d[bisect_left(_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
            d[-1] += seconds
            return
        fns = self._answered.get((route, status))
        if fns is None:
            fns = (
                self._child("requests_total", (route, str(status))).inc,
                self._child("", (route,)).observe,
            )
            self._answered[(route, status)] = fns
        fns[0]()
        fns[1](seconds)

    def upstream_error(self, kind: str) -> None:
        self.inc("upstream_errors_total", kind=kind)

    def inc(self, name: str, by: int = 1, **labels: str) -> None:
        """Add ``by`` to the counter ``name`` (a key of :data:`COUNTERS`; a name missing there is
        registered on first use, labelled by the keywords given, so a count is never lost)."""
        if self.local and not labels:
            plain_key: tuple[str, tuple[str, ...]] = (name, ())
            counts = self._counts
            counts[plain_key] = counts.get(plain_key, 0) + by
            if name not in COUNTERS:
                COUNTERS[name] = (f"{name} (no description).", ())
            return
        plain = self._plain_inc.get(name)
        if plain is not None and not labels:
            plain(by)
            return
        if name not in COUNTERS:
            COUNTERS[name] = (f"{name} (no description).", tuple(sorted(labels)))
        label_names = COUNTERS[name][1]
        values = tuple(labels[n] for n in label_names)
        if self.local:
            key = (name, values)
            self._counts[key] = self._counts.get(key, 0) + by
            return
        if name not in self._counters:
            self._counters[name] = Counter(
                PREFIX + name, COUNTERS[name][0], label_names, registry=self.registry
            )
        child = self._child(name, values)
        if not label_names:
            self._plain_inc[name] = child.inc
        child.inc(by)

    def render(self, snapshot: dict[str, int] | None) -> str:
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
            text = generate_latest(registry).decode()
        else:
            text = generate_latest(self.registry).decode()
        out = [text.rstrip("\n")]
        if snapshot is not None:
            for name, (kind, help_text) in _DB_GAUGES.items():
                out += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]
                out.append(f"{PREFIX}{name} {snapshot.get(name, 0)}")
        return "\n".join(out) + "\n"

    async def observe(
        self, app: Callable[..., Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run ``app`` and count its answer in ``requests_total`` and the duration histogram,
        labelled with the matched route's path template ("other" when no route matched)."""
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            matched = scope.get("route")
            route = getattr(matched, "path", None) or "other"
            self.request(route, status[0], time.perf_counter() - t0)


class _LocalCollector:
    """One process's counts as metric families, built at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts = dict(self.metrics._counts)
        by_name: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for (name, values), n in counts.items():
            by_name.setdefault(name, []).append((values, n))
        for name, (help_text, label_names) in list(COUNTERS.items()):
            family = CounterMetricFamily(PREFIX + name, help_text, labels=label_names)
            if not label_names:
                family.add_metric([], sum(n for _, n in by_name.get(name, [])))
            for values, n in by_name.get(name, []):
                if label_names and len(values) == len(label_names):
                    family.add_metric(list(values), n)
            yield family
        hist = HistogramMetricFamily(
            PREFIX + "request_duration_seconds", DURATION_HELP, labels=["route"]
        )
        for route, d in list(self.metrics._durations.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, c in zip((*_BUCKETS, math.inf), d[:-1], strict=True):
                cumulative += c
                buckets.append((_le(bound), cumulative))
            hist.add_metric([route], buckets, sum_value=d[-1])
        yield hist


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.001``, ``1.0``, ``+Inf``)."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


def multiprocess_dir(workers: int) -> Callable[[], None] | None:
    """Called by the runner before workers start. An operator's ``PROMETHEUS_MULTIPROC_DIR`` is
    emptied of old files (counts restart with the server); else, for ``workers > 1``, a fresh
    temporary directory is set there. Returns the clean-up for a directory created here."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    if workers <= 1:
        return None
    created = tempfile.mkdtemp(prefix="dexto-gw-metrics-")
    os.environ[MULTIPROC_ENV] = created

    def cleanup() -> None:
        shutil.rmtree(created, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == created:
            del os.environ[MULTIPROC_ENV]

    return cleanup


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
