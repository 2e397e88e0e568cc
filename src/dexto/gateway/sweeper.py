"""The hold sweeper: expired holds are billed if they delivered output, else released.

A hold expires when its worker stopped renewing it (the worker died, or its settlement never
reached the database). Each sweep, in every worker:

* an expired hold on which nothing was delivered is **released** (recorded in ``swept_holds``);
* an expired hold that delivered output is **settled**: first from the upstream's generation
  record (``GET {upstream}/generation?id=<generation id>``: ``total_cost``, ``tokens_prompt``,
  ``tokens_completion``), charged as exact; else estimated from what the hold recorded
  (``ceil(body/4)`` prompt tokens + the delivered completion tokens at the model's list price,
  never more than the hold; the hold itself for an unpriced model), with the reason.

Settling goes through :func:`ledger.settle` with ``expired_before``, so a hold that its live
worker settled (or renewed) in the meantime is left alone, and the ledger's unique request id
makes a late settle after a sweep a no-op: nothing is ever charged twice.
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
from dexto.gateway.state import GatewayState

__all__ = ["ExpiredHold", "delivered_expired", "lookup_generation", "run_sweeper", "sweep_once"]

_BATCH = 200


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


def record_swept(
    conn: Conn, request_id: str, account_id: str, amount: int, reason: str, now: int
) -> None:
    with conn.write():
        conn.execute(ledger.INSERT_SWEPT, (request_id, account_id, amount, "settled", reason, now))


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


async def _settle_one(state: GatewayState, hold: ExpiredHold, now: int) -> bool:
    st = state
    cost: int | None = None
    pt, ct = hold.prompt_tokens, hold.completion_tokens
    estimated, reason = True, "swept"
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
                cost, estimated, reason = uc.cost, False, "swept:generation"
                pt = uc.prompt_tokens if uc.prompt_tokens is not None else pt
                ct = uc.completion_tokens if uc.completion_tokens is not None else ct
    if cost is None:
        guess = estimate_tokens_cost(pt or 0, ct, price)
        cost = hold.amount_micros if guess is None else min(hold.amount_micros, guess)
        reason = "swept:estimate" + ("" if price is not None else ",unpriced")
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
        expired_before=now,
    )
    if result.duplicate:
        return False
    await st.runner.run(
        record_swept, hold.request_id, hold.account_id, hold.amount_micros, reason, now
    )
    st.metrics.inc("holds_swept_settled_total")
    if estimated:
        st.metrics.inc("estimated_charges_total")
    log_event(
        st.log,
        "expired hold settled",
        request_id=hold.request_id,
        account=hold.account_id,
        cost_micros=result.charged_micros,
        written_off_micros=result.written_off_micros or None,
        estimated=estimated,
        estimate_reason=reason,
    )
    return True


async def sweep_once(state: GatewayState, now: int | None = None) -> tuple[int, int]:
    """One sweep: (holds settled, holds released)."""
    now = ledger.now_ms() if now is None else now
    settled = 0
    for hold in await state.runner.run(delivered_expired, now):
        try:
            settled += await _settle_one(state, hold, now)
        except Exception as exc:  # noqa: BLE001 - the hold stays; the next sweep retries
            log_event(state.log, "expired hold settle failed", 30, error=type(exc).__name__)
    released = await state.runner.run(ledger.sweep_expired, now)
    if released:
        state.metrics.inc("holds_expired_total", released)
        log_event(state.log, "expired holds released", count=released)
    return settled, released


async def run_sweeper(state: GatewayState) -> None:
    """Sweep every ``sweep_interval_s`` until cancelled; a failed sweep is retried next time."""
    while True:
        await asyncio.sleep(state.settings.sweep_interval_s)
        try:
            await sweep_once(state)
        except DatabaseUnavailable:
            continue  # the runner logs the outage once
        except Exception as exc:  # noqa: BLE001 - keep sweeping after a transient DB error
            log_event(state.log, "hold sweep failed", 30, error=type(exc).__name__)
