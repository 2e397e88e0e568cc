"""Keeps PostgreSQL's ``holds`` table small under load, whether or not autovacuum runs.

Every request inserts one ``holds`` row and deletes it when it settles, so the table's live rows
are the requests in flight while its dead row versions grow by one per request. Each admission
sums its account's holds through the ``account_id`` index, and that scan walks the dead entries
too: without a vacuum the cost of an admission grows with the number of requests served so far.
Autovacuum visits a table at most once per ``autovacuum_naptime`` (1 min by default) per
database, and it may be off.

:func:`run_holds_vacuum` (one task per worker, PostgreSQL only) reads the table's dead row count
from ``pg_stat_user_tables`` every :data:`INTERVAL_S` and, from :data:`DEAD_ROWS` dead rows on,
runs ``VACUUM (SKIP_LOCKED) holds`` on a pooled connection (autocommit, so outside a
transaction block; a worker finding another's vacuum running skips its own). It does nothing if
the gateway's role does not own the table (a VACUUM would be refused with a warning): it logs
that once and stops. A failed check or vacuum is retried at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dexto.gateway.db import is_unavailable
from dexto.gateway.logs import log_event
from dexto.gateway.pg_pool import PgPool

__all__ = ["DEAD_ROWS", "INTERVAL_S", "HoldsVacuum", "run_holds_vacuum"]

INTERVAL_S = 1.0
DEAD_ROWS = 1000

_OWNED = "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = 'holds'::regclass"
_DEAD = "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'holds'::regclass"
_VACUUM = "VACUUM (SKIP_LOCKED) holds"


async def _scalar(cur: Any, sql: str) -> Any:
    await cur.execute(sql)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _vacuum(cur: Any) -> None:
    await cur.execute(_VACUUM)


class HoldsVacuum:
    """One worker's check-and-vacuum rounds (see the module docstring)."""

    def __init__(self, pool: PgPool, log: logging.Logger, dead_rows: int = DEAD_ROWS) -> None:
        self.pool = pool
        self.log = log
        self.dead_rows = dead_rows
        self.owned: bool | None = None  # None: not checked yet
        self.vacuums = 0  # VACUUMs this worker ran

    async def round(self) -> bool:
        """One check; True if it ran a VACUUM."""
        if self.owned is None:
            self.owned = bool(await self.pool.run(_scalar, _OWNED))
            if not self.owned:
                log_event(
                    self.log,
                    "holds table not vacuumed by the gateway: its role does not own it; "
                    "keep autovacuum on for it",
                    logging.WARNING,
                )
        if not self.owned:
            return False
        dead = await self.pool.run(_scalar, _DEAD)
        if dead is None or int(dead) < self.dead_rows:
            return False
        await self.pool.run(_vacuum)
        self.vacuums += 1
        return True


async def run_holds_vacuum(vacuum: HoldsVacuum, interval_s: float = INTERVAL_S) -> None:
    """:meth:`HoldsVacuum.round` every ``interval_s`` until cancelled or the role is found not
    to own the table."""
    while vacuum.owned is not False:
        await asyncio.sleep(interval_s)
        try:
            await vacuum.round()
        except Exception as exc:  # noqa: BLE001 - a failed round is retried next interval
            if not is_unavailable(exc):  # an outage: the runner logs it once
                log_event(
                    vacuum.log, "holds vacuum failed", logging.WARNING, error=type(exc).__name__
                )
