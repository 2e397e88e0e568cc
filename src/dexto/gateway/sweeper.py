"""The hold sweeper: expired holds are billed if they delivered output, else released.

A hold expires when its worker stopped renewing it (the worker died, or its settlement never
reached the database). Each sweep, in every worker:

* an expired hold on which nothing was delivered is **released** (recorded in ``swept_holds``);
* an expired hold that delivered output is **settled**: first from the upstream's generation
  record (``GET {upstream}/generation?id=<generation id>``: ``total_cost``, ``tokens_prompt``,
  ``tokens_completion``), charged as exact. A failed lookup leaves the hold for the next sweep;
  on the ``LOOKUP_TRIES``-th failed sweep (counted per worker) it is estimated from what the
  hold recorded (``ceil(body/4)`` prompt tokens + the delivered completion tokens at the
  model's list price, never more than the hold; the hold itself for an unpriced model), with
  the reason.

Settling goes through :func:`ledger.settle` with ``expired_before`` and ``swept_reason``: the
hold's deletion, the ledger row and the ``swept_holds`` row are one transaction; a hold that its
live worker settled (or renewed) in the meantime is left alone, and the ledger's unique request
id makes a late settle after a sweep a no-op: nothing is ever charged twice.

Before each sweep (and once at start) the settlement spools of dead workers are replayed
(:func:`replay_spools`); a spooled delivery record (a stream whose hold could not record its
delivery) is settled the same way as an expired delivered hold, with the reasons
``spool:generation`` / ``spool:estimate``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dexto.gateway import ledger
from dexto.gateway.db import Conn, DatabaseUnavailable
from dexto.gateway.logs import log_event
from dexto.gateway.pricing import cost_from_usage, estimate_tokens_cost
from dexto.gateway.settings import default_spool_dir
from dexto.gateway.spool import claim_orphans
from dexto.gateway.state import GatewayState

__all__ = [
    "LOOKUP_TRIES",
    "ExpiredHold",
    "delivered_expired",
    "lookup_generation",
    "replay_spools",
    "run_sweeper",
    "settle_delivered",
    "spooled_hold",
    "sweep_once",
]

_BATCH = 200
LOOKUP_TRIES = 3  # sweeps that try the generation lookup before a hold is estimated


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    request_id: str
    account_id: str
    amount_micros: int
    model: str | None
    key_id: str | None
    prompt_tokens: int | None
    generation_id: str | None
    completion_tokens: int


def delivered_expired(conn: Conn, now: int, limit: int = _BATCH) -> list[ExpiredHold]:
    with conn.read():
        rows = conn.all(
            "SELECT request_id, account_id, amount_micros, model, key_id, prompt_tokens,"
            " generation_id, completion_tokens FROM holds"
            " WHERE expires_at <= ? AND delivered = 1 ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
    return [
        ExpiredHold(
            str(r[0]),
            str(r[1]),
            int(r[2]),
            r[3],
            r[4],
            None if r[5] is None else int(r[5]),
            r[6],
            int(r[7] or 0),
        )
        for r in rows
    ]


async def lookup_generation(state: GatewayState, generation_id: str) -> dict[str, Any] | None:
    """OpenRouter's generation record ``data`` object, or None if unavailable."""
    try:
        resp = await state.upstream.client.request(
            "GET", "generation?id=" + quote(generation_id, safe="")
        )
        try:
            data = await resp.aread()
        finally:
            await resp.aclose()
    except Exception as exc:  # noqa: BLE001 - fall back to the estimate
        log_event(state.log, "generation lookup failed", 30, error=type(exc).__name__)
        return None
    if resp.status_code != 200:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    inner = doc.get("data") if isinstance(doc, dict) else None
    return inner if isinstance(inner, dict) else None


async def settle_delivered(
    state: GatewayState,
    hold: ExpiredHold,
    misses: dict[str, int] | None,
    *,
    source: str = "swept",
    expired_before: int | None = None,
) -> bool | None:
    """Settle a request that delivered output and whose worker is gone: from its generation
    record (exact), else estimated, never more than the hold; idempotent per request id.
    False if nothing changed (settled already; with ``expired_before``, also a hold that is
    gone or not expired), None if it is left for later (its generation lookup failed fewer than
    ``LOOKUP_TRIES`` times so far, counted in ``misses``). The reason recorded is
    ``<source>:generation`` or ``<source>:estimate``."""
    st = state
    cost: int | None = None
    pt, ct = hold.prompt_tokens, hold.completion_tokens
    estimated, reason = True, source
    price = await st.catalog.price(hold.model) if hold.model else None
    if hold.generation_id:
        gen = await lookup_generation(st, hold.generation_id)
        if gen is not None:
            uc = cost_from_usage(
                {
                    "cost": gen.get("total_cost"),
                    "prompt_tokens": gen.get("tokens_prompt"),
                    "completion_tokens": gen.get("tokens_completion"),
                },
                price,
            )
            if uc.cost is not None and not uc.bad_cost:
                cost, estimated, reason = uc.cost, False, source + ":generation"
                pt = uc.prompt_tokens if uc.prompt_tokens is not None else pt
                ct = uc.completion_tokens if uc.completion_tokens is not None else ct
        if cost is None and misses is not None:  # no record, or one whose cost is unusable
            tries = misses.get(hold.request_id, 0) + 1
            if tries < LOOKUP_TRIES:
                misses[hold.request_id] = tries
                return None
    if cost is None:
        guess = estimate_tokens_cost(pt or 0, ct, price)
        cost = hold.amount_micros if guess is None else min(hold.amount_micros, guess)
        reason = source + ":estimate" + ("" if price is not None else ",unpriced")
    result = await st.runner.run(
        ledger.settle,
        hold.request_id,
        hold.account_id,
        cost,
        overdraft_limit_micros=st.settings.overdraft_limit_micros,
        model=hold.model,
        prompt_tokens=pt,
        completion_tokens=ct,
        estimated=estimated,
        key_id=hold.key_id,
        estimate_reason=reason,
        settled_by="sweeper",
        expired_before=expired_before,
        swept_reason=reason,
    )
    if result.duplicate:
        return False
    st.metrics.inc("holds_swept_settled_total")
    if estimated:
        st.metrics.inc("estimated_charges_total")
    log_event(
        st.log,
        "expired hold settled" if source == "swept" else "spooled delivery settled",
        request_id=hold.request_id,
        account=hold.account_id,
        cost_micros=result.charged_micros,
        written_off_micros=result.written_off_micros or None,
        estimated=estimated,
        estimate_reason=reason,
    )
    return True


async def sweep_once(
    state: GatewayState, now: int | None = None, misses: dict[str, int] | None = None
) -> tuple[int, int]:
    """One sweep: (holds settled, holds released). ``misses`` (kept across sweeps by
    :func:`run_sweeper`) counts failed generation lookups per hold; without it a failed lookup
    falls back to the estimate at once."""
    now = ledger.now_ms() if now is None else now
    settled = 0
    left: set[str] = set()
    for hold in await state.runner.run(delivered_expired, now):
        try:
            done = await settle_delivered(state, hold, misses, expired_before=now)
        except Exception as exc:  # noqa: BLE001 - the hold stays; the next sweep retries
            log_event(state.log, "expired hold settle failed", 30, error=type(exc).__name__)
            continue
        if done is None:
            left.add(hold.request_id)
        else:
            settled += done
    if misses is not None:
        for rid in [rid for rid in misses if rid not in left]:
            del misses[rid]
    released = await state.runner.run(ledger.sweep_expired, now)
    if released:
        state.metrics.inc("holds_expired_total", released)
        log_event(state.log, "expired holds released", count=released)
    return settled, released


class _Later(Exception):
    """A spooled delivery left for the next round (its generation lookup failed)."""


def spooled_hold(rec: dict[str, Any]) -> ExpiredHold:
    """The hold a spooled delivery record describes (see :mod:`spool`)."""
    d = rec["delivered"]
    pt = d.get("prompt_tokens")
    return ExpiredHold(
        str(rec["rid"]),
        str(rec["account"]),
        int(d["hold"]),
        d.get("model"),
        d.get("key_id"),
        None if pt is None else int(pt),
        d.get("generation_id"),
        int(d.get("completion_tokens") or 0),
    )


async def replay_spools(state: GatewayState, misses: dict[str, int] | None = None) -> int:
    """Settle what dead workers left in the settlement spool (see :mod:`spool`): deferred
    settlements as they were computed, delivery records as expired delivered holds (the hold
    removed if still there). ``misses`` counts failed generation lookups across rounds, as in
    :func:`sweep_once`."""
    st = state
    directory = st.settings.spool_dir or default_spool_dir(st.settings.db_url)

    async def settle(rid: str, account: str, cost: int, kw: dict[str, Any]) -> object:
        result = await st.runner.run(ledger.settle, rid, account, cost, **kw)
        log_event(
            st.log,
            "spooled settlement replayed",
            request_id=rid,
            account=account,
            cost_micros=result.charged_micros,
            duplicate=result.duplicate or None,
        )
        return result

    async def delivered(rec: dict[str, Any]) -> object:
        hold = spooled_hold(rec)
        done = await settle_delivered(st, hold, misses, source="spool")
        if done is None:
            raise _Later
        if misses is not None:
            misses.pop(hold.request_id, None)
        return done

    def failed(exc: Exception) -> None:
        if not isinstance(exc, DatabaseUnavailable | _Later):
            log_event(st.log, "spooled settlement replay failed", 30, error=type(exc).__name__)

    n = await claim_orphans(directory, settle, on_error=failed, settle_delivered=delivered)
    if n:
        st.metrics.inc("settle_spool_replayed_total", n)
    return n


async def run_sweeper(state: GatewayState) -> None:
    """Replay dead workers' spooled settlements, then every ``sweep_interval_s`` sweep and replay
    again, until cancelled; a failed round is retried next time. The replay and the sweep fail
    separately: an unusable spool directory (logged when its error changes) does not stop the
    holds from being swept."""
    misses: dict[str, int] = {}
    spool_misses: dict[str, int] = {}
    spool_error: str | None = None  # the spool directory's last error, logged when it changes
    first = True
    while True:
        if not first:
            await asyncio.sleep(state.settings.sweep_interval_s)
        try:
            await replay_spools(state, spool_misses)
            spool_error = None
        except DatabaseUnavailable:
            pass  # the runner logs the outage once
        except OSError as exc:  # the spool directory is unusable: the holds are swept anyway
            if type(exc).__name__ != spool_error:
                spool_error = type(exc).__name__
                log_event(
                    state.log,
                    "spool directory unusable",
                    40,
                    spool_dir=state.settings.spool_dir or default_spool_dir(state.settings.db_url),
                    error=spool_error,
                    fix="point DEXTO_GATEWAY_SPOOL_DIR at a directory this user can write",
                )
        except Exception as exc:  # noqa: BLE001 - keep sweeping after a transient DB error
            log_event(state.log, "spooled settlement replay failed", 30, error=type(exc).__name__)
        if not first:
            try:
                await sweep_once(state, misses=misses)
            except DatabaseUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001 - keep sweeping after a transient DB error
                log_event(state.log, "hold sweep failed", 30, error=type(exc).__name__)
        first = False
