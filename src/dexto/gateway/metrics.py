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

import os
import shutil
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from dexto.gateway.asgi import Receive, Scope, Send
from dexto.gateway.db import Conn
from dexto.gateway.ledger import now_ms

__all__ = ["COUNTERS", "Metrics", "db_snapshot", "multiprocess_dir"]

PREFIX = "dexto_gateway_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
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
    "holds_swept_settled_total": ("Expired holds with delivered output settled.", ()),
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
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = {
            name: Counter(PREFIX + name, help_text, labels, registry=self.registry)
            for name, (help_text, labels) in COUNTERS.items()
        }
        self._duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time to answer (to the last byte for streams).",
            ("route",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        # hot paths: bound methods looked up once
        self._answered: dict[tuple[str, int], tuple[Callable[[], None], Callable[[float], None]]]
        self._answered = {}
        self._plain_inc: dict[str, Callable[[int], None]] = {}

    def _child(self, name: str, values: tuple[str, ...]) -> Any:
        key = (name, values)
        child = self._children.get(key)
        if child is None:
            metric = self._duration if name == "" else self._counters[name]
            child = metric.labels(*values) if values else metric
            self._children[key] = child
        return child

    def request(self, route: str, status: int, seconds: float) -> None:
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
        self._child("upstream_errors_total", (kind,)).inc()

    def inc(self, name: str, by: int = 1, **labels: str) -> None:
        """Add ``by`` to the counter ``name`` (a key of :data:`COUNTERS`; a name missing there is
        registered on first use, labelled by the keywords given, so a count is never lost)."""
        plain = self._plain_inc.get(name)
        if plain is not None and not labels:
            plain(by)
            return
        if name not in self._counters:
            label_names = tuple(sorted(labels))
            COUNTERS.setdefault(name, (f"{name} (no description).", label_names))
            self._counters[name] = Counter(
                PREFIX + name, COUNTERS[name][0], COUNTERS[name][1], registry=self.registry
            )
        label_names = COUNTERS[name][1]
        child = self._child(name, tuple(labels[n] for n in label_names))
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
