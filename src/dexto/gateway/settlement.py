"""Settlement for the chat path: shielded from cancellation, retried, deferred when the
database is away; and the durable-hold progress updates made while a stream runs.

Every exit of a request that was admitted ends here or in a release (see docs/gateway.md,
"What is billed on each exit").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from dexto.gateway import ledger
from dexto.gateway.leases import HoldLeases
from dexto.gateway.logs import log_event
from dexto.gateway.pricing import cost_from_usage, estimate_tokens_cost
from dexto.gateway.reservations import Reservations
from dexto.gateway.settings import default_spool_dir
from dexto.gateway.spool import Spool
from dexto.gateway.state import GatewayState

if TYPE_CHECKING:
    from dexto.gateway.proxy import RequestContext

__all__ = ["Settlement", "uncancellable"]

T = TypeVar("T")
_SETTLE_ATTEMPTS = 4  # then deferred: retried every second in the background
PROGRESS_FLUSH_S = 0.2  # queued hold updates are written 0.2–0.4 s later (one transaction)
RECORD_WAIT_S = 10.0  # a delivery record still running after this: the streams go on without it
_Due = tuple["RequestContext", str | None, int]  # a stream, its generation id, tokens delivered


async def uncancellable(aw: Awaitable[T]) -> T:
    """Run ``aw`` to completion even if the calling task is cancelled meanwhile (money moves
    must not be cut in half); a cancellation that arrived is re-raised once it is done."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
    return result


class Settlement:
    """Mixed into the chat endpoint: owns the in-flight settlements of one worker."""

    state: GatewayState

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._pending: dict[str, tuple[RequestContext, dict[str, Any]]] = {}
        # Deferred settlements whose spool write failed: written again each retry round and
        # at shutdown (they are lost if this worker dies before one succeeds).
        self._unspooled: set[str] = set()
        self._retrier: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[Any]] = set()
        self.active: set[asyncio.Task[Any]] = set()  # request tasks in progress
        self._progress_due: dict[str, tuple[str | None, int]] = {}
        self._progress_aging: dict[str, tuple[str | None, int]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._first_due: dict[str, _Due] = {}
        self._delivery_spooled: dict[str, RequestContext] = {}  # delivery lines in the spool
        self._first_batch: asyncio.Future[None] | None = None
        self._first_writer: asyncio.Task[None] | None = None
        # the batch whose write is in flight: its future, its deliveries, its spooling tasks
        self._first_inflight: tuple[asyncio.Future[None], dict[str, _Due], list[Any]] | None = None
        s = state.settings
        self.spool = Spool(s.spool_dir or default_spool_dir(s.db_url))
        self.leases = HoldLeases(state)  # running requests' holds keep counting
        self.reservations = Reservations(state, self.leases)

    # -- durable hold progress ------------------------------------------------------------

    def lease_interval(self) -> float:
        """Seconds between hold updates while a stream runs (each one extends the hold)."""
        return max(0.2, self.state.settings.hold_ttl_s / 3)

    def note_progress(self, ctx: RequestContext, generation_id: str | None, tokens: int) -> None:
        """Queue an update of the hold (delivered, the upstream generation id, the tokens
        delivered so far, a renewed lease). A background flusher writes, every
        ``PROGRESS_FLUSH_S`` and in one transaction, the updates queued before its previous
        round; a request that settles first is dropped from the queue (its hold is gone), so
        requests shorter than that never pay for an update."""
        self._progress_due[ctx.request_id] = (generation_id, tokens)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_progress())

    async def record_delivery(
        self, ctx: RequestContext, generation_id: str | None, tokens: int
    ) -> None:
        """Record on the hold that the stream delivered (and its generation id), and return once
        that write returned, so no byte reaches the client before a sweeper could bill it.
        Group commit: every stream that asks before the next loop iteration (or while a write
        is running) joins one transaction. A write that fails or finds the hold gone, or a
        batch not written ``RECORD_WAIT_S`` after it was opened (its write still running, or
        still queued behind a slow one), is logged, and the caller goes on once the delivery
        was written to the spool instead (fsynced; see spool.py): a worker dying before the
        request settles leaves it to be billed by the worker that replays the spool."""
        self._first_due[ctx.request_id] = (ctx, generation_id, tokens)
        batch = self._first_batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._first_batch = loop.create_future()
            loop.call_later(RECORD_WAIT_S, self._batch_deadline, batch)
        if self._first_writer is None or self._first_writer.done():
            self._first_writer = asyncio.ensure_future(self._write_first())
        await asyncio.shield(batch)

    async def _write_first(self) -> None:
        st = self.state
        while self._first_due:
            await asyncio.sleep(0)  # one loop iteration: streams ready now join this batch
            due, self._first_due = self._first_due, {}
            batch, self._first_batch = self._first_batch, None
            rows = [(rid, gen, tokens) for rid, (_, gen, tokens) in due.items()]
            expires_at = ledger.now_ms() + st.settings.hold_ttl_s * 1000
            spooling: list[asyncio.Future[None]] = []
            if batch is not None:
                self._first_inflight = (batch, due, spooling)
            try:
                found = await st.runner.run(ledger.progress_many, rows, expires_at)
            except Exception as exc:  # noqa: BLE001 - relayed anyway, the delivery spooled
                log_event(st.log, "hold delivery record failed", 30, error=type(exc).__name__)
                if not spooling:
                    self._first_inflight = None
                    await self._spool_delivered(due)
            else:
                # A hold that is gone (released by a sweeper once expired, or an admission a
                # database crash lost) cannot record the delivery: the spool does instead.
                gone = {rid: v for rid, v in due.items() if rid not in found}
                if gone and not spooling:
                    for rid in gone:
                        log_event(st.log, "hold gone at its delivery record", 30, request_id=rid)
                    self._first_inflight = None
                    await self._spool_delivered(gone)
            finally:
                self._first_inflight = None
                if not spooling and batch is not None and not batch.done():
                    batch.set_result(None)

    def _batch_deadline(self, batch: asyncio.Future[None]) -> None:
        """``RECORD_WAIT_S`` after ``batch`` was opened: if its streams still wait, spool their
        deliveries and let them go on. A batch still queued (behind a slow write) is detached
        first — later streams open a new batch — and its deliveries stay queued, so the record
        is still written after the slow one."""
        if batch.done():
            return
        if self._first_batch is batch:
            self._first_batch = None
            self._record_slow(batch, dict(self._first_due), [])
        elif self._first_inflight is not None and self._first_inflight[0] is batch:
            _, due, spooling = self._first_inflight
            self._record_slow(batch, due, spooling)

    def _record_slow(
        self,
        batch: asyncio.Future[None] | None,
        due: dict[str, _Due],
        spooling: list[asyncio.Future[None]],
    ) -> None:
        """The delivery record still runs: spool the deliveries, then let the streams go on."""
        log_event(self.state.log, "hold delivery record slow; streams go on", 30)

        async def spool_then_release() -> None:
            try:
                await self._spool_delivered(due)
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)

        task = asyncio.ensure_future(spool_then_release())
        spooling.append(task)
        self._settling.add(task)  # referenced until done; drain waits for it
        task.add_done_callback(self._settling.discard)

    async def _spool_delivered(self, due: dict[str, _Due]) -> None:
        """Write the deliveries the holds could not record to the spool (one fsync each)."""
        live = [v for v in due.values() if not v[0].settling]
        for ctx, _, _ in live:
            self._delivery_spooled[ctx.request_id] = ctx
        if live:
            await asyncio.to_thread(self._append_all, live)

    def _append_all(self, rows: list[_Due]) -> None:
        for ctx, gen, tokens in rows:
            self._append_delivered(ctx, gen, tokens)

    def _append_delivered(self, ctx: RequestContext, generation_id: str | None, n: int) -> None:
        hold = {
            "hold": ctx.hold,
            "model": ctx.model,
            "key_id": ctx.key_id,
            "prompt_tokens": ctx.prompt_estimate,
            "generation_id": generation_id,
            "completion_tokens": n,
        }
        try:
            self.spool.append_delivered(ctx.request_id, ctx.account_id, hold)
        except OSError as exc:
            self.state.metrics.inc("settle_spool_failed_total")
            log_event(
                self.state.log,
                "delivery spool write failed",
                40,
                request_id=ctx.request_id,
                error=type(exc).__name__,
            )

    async def _flush_progress(self) -> None:
        st = self.state
        while self._progress_due or self._progress_aging:
            await asyncio.sleep(PROGRESS_FLUSH_S)
            due, self._progress_aging = self._progress_aging, self._progress_due
            self._progress_due = {}
            if not due:
                continue
            rows = [(rid, gen, tokens) for rid, (gen, tokens) in due.items()]
            expires_at = ledger.now_ms() + st.settings.hold_ttl_s * 1000
            try:
                await st.runner.run(ledger.progress_many, rows, expires_at)
            except Exception as exc:  # noqa: BLE001 - the settle path still bills the requests
                log_event(st.log, "hold progress failed", 30, error=type(exc).__name__)
                # Deliveries known only to the spool: refresh their generation id and tokens.
                spooled = [
                    (self._delivery_spooled[rid], gen, tokens)
                    for rid, (gen, tokens) in due.items()
                    if rid in self._delivery_spooled
                ]
                if spooled:
                    await asyncio.to_thread(self._append_all, spooled)

    # -- settlement -----------------------------------------------------------------------

    async def settle_usage(
        self,
        ctx: RequestContext,
        usage: Any,
        delivered: int | Callable[[], int],
        *,
        outcome: str = "ok",
    ) -> ledger.SettleResult:
        """Settle from the upstream's ``usage`` if it gives a good cost, else estimate:
        ``usage`` tokens if sane, else ``ceil(B/4)`` prompt and ``delivered`` completion tokens,
        at list price, never more than the hold (the hold for an unpriced model)."""
        uc = cost_from_usage(usage, ctx.price)
        if uc.bad_cost:
            self.state.metrics.inc("upstream_bad_cost_total")
            bad = usage.get("cost") if isinstance(usage, dict) else None
            log_event(
                self.state.log,
                "upstream reported a bad cost",
                30,
                request_id=ctx.request_id,
                model=ctx.model,
                error=f"usage.cost={bad!r}"[:60],
            )
        if uc.cost is not None and not uc.bad_cost:
            return await self.settle(
                ctx, uc.cost, uc.prompt_tokens, uc.completion_tokens, estimated=False
            )
        pt = uc.prompt_tokens if uc.prompt_tokens is not None else ctx.prompt_estimate
        if uc.completion_tokens is not None:
            ct = uc.completion_tokens
        else:
            ct = delivered if isinstance(delivered, int) else delivered()
        guess = uc.cost if uc.cost is not None else estimate_tokens_cost(pt, ct, ctx.price)
        cost = ctx.hold if guess is None else min(ctx.hold, guess)
        if uc.bad_cost:
            reason = "bad_cost"
        elif outcome in ("ok", "no_usage"):
            reason = "no_usage"
        else:
            reason = outcome
        if ctx.price is None:
            reason += ",unpriced"
        return await self.settle(ctx, cost, pt, ct, estimated=True, reason=reason)

    async def settle(
        self,
        ctx: RequestContext,
        cost: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        *,
        estimated: bool,
        reason: str | None = None,
    ) -> ledger.SettleResult:
        """Replace the hold by the charge. Shielded from cancellation and retried; if the
        database stays unavailable the settlement is queued and retried in the background
        (the hold keeps counting meanwhile), and the computed charge is returned."""
        ctx.settling = True
        try:
            return await self._settle_now(
                ctx, cost, prompt_tokens, completion_tokens, estimated, reason
            )
        except asyncio.CancelledError:
            # Cancelled mid-way (a database call in a thread, or a retry pause): settle again in
            # a task nothing can cancel, then let the cancellation proceed. Settling is
            # idempotent per request id, so an attempt that did land is not charged twice.
            task = asyncio.ensure_future(
                self._settle_now(ctx, cost, prompt_tokens, completion_tokens, estimated, reason)
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            await uncancellable(task)
            raise

    async def _settle_now(
        self,
        ctx: RequestContext,
        cost: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        estimated: bool,
        reason: str | None,
    ) -> ledger.SettleResult:
        st = self.state
        self._progress_due.pop(ctx.request_id, None)
        self._progress_aging.pop(ctx.request_id, None)
        self._first_due.pop(ctx.request_id, None)
        kwargs: dict[str, Any] = {
            "overdraft_limit_micros": st.settings.overdraft_limit_micros,
            "model": ctx.model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "estimated": estimated,
            "key_id": ctx.key_id,
            "session_id": ctx.session_id,
            "source": ctx.source,
            "client_version": ctx.client_version,
            "estimate_reason": reason,
        }
        result: ledger.SettleResult | None = None
        delay = 0.05
        for attempt in range(_SETTLE_ATTEMPTS):
            try:
                result = await st.runner.run(
                    ledger.settle, ctx.request_id, ctx.account_id, cost, **kwargs
                )
                break
            except Exception as exc:  # noqa: BLE001 - retried, then queued
                st.metrics.inc("settle_retries_total")
                log_event(
                    st.log,
                    "settlement failed; retrying",
                    30,
                    request_id=ctx.request_id,
                    attempt=attempt + 1,
                    error=type(exc).__name__,
                )
                if attempt + 1 < _SETTLE_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 4
        charged_known = True
        if result is not None and result.duplicate:
            # Already settled: an attempt whose outcome this worker did not get (e.g. on
            # PostgreSQL the statement committed and its flush barrier failed) landed. Report
            # what the ledger recorded, not the empty result of the repeat.
            recorded = await self._recorded(ctx.request_id, result)
            charged_known = recorded is not result
            result = recorded
        spooled = self._delivery_spooled.pop(ctx.request_id, None) is not None
        if result is not None and spooled:
            self._landed(ctx.request_id)  # its delivery line in the spool is done
        if result is None:
            # Spooled first: a retry that lands marks a spool entry that already exists.
            if not await self._spool_deferred(ctx, cost, kwargs):
                self._unspooled.add(ctx.request_id)
            self._pending[ctx.request_id] = (ctx, {"cost": cost, **kwargs})
            st.metrics.inc("settle_deferred_total")
            if self._retrier is None or self._retrier.done():
                self._retrier = asyncio.ensure_future(self._retry_pending())
            result = ledger.SettleResult(cost, 0, ctx.balance - cost, False)
            self.reservations.deferred(ctx.request_id)  # counted on its reservation until landed
        else:  # the computed cost where the recorded charge is unknown: at least the debit
            self.reservations.settled(
                ctx.request_id, result.charged_micros if charged_known else cost
            )
        st.metrics.inc("holds_settled_total")
        if estimated:
            st.metrics.inc("estimated_charges_total")
        if st.log.isEnabledFor(logging.INFO):  # else the fields are not even built
            self._log_settled(ctx, result, prompt_tokens, completion_tokens, estimated, reason)
        return result

    def _log_settled(
        self,
        ctx: RequestContext,
        result: ledger.SettleResult,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        estimated: bool,
        reason: str | None,
    ) -> None:
        log_event(
            self.state.log,
            "chat.completions",
            request_id=ctx.request_id,
            account=ctx.account_id,
            key_id=ctx.key_id,
            model=ctx.model,
            stream=ctx.stream,
            status=200,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=result.charged_micros,
            hold_micros=ctx.hold,
            written_off_micros=result.written_off_micros or None,
            estimated=estimated,
            estimate_reason=reason,
            latency_ms=round((time.perf_counter() - ctx.started) * 1000, 2),
        )

    async def _recorded(
        self, request_id: str, duplicate: ledger.SettleResult
    ) -> ledger.SettleResult:
        try:
            found = await self.state.runner.run(ledger.recorded_charge, request_id)
        except Exception as exc:  # noqa: BLE001 - the charge stands; only the report is unknown
            log_event(self.state.log, "recorded charge lookup failed", 30, error=type(exc).__name__)
            return duplicate
        if found is None:
            return duplicate
        return ledger.SettleResult(found[0], found[1], duplicate.balance_micros, True)

    async def _spool_deferred(self, ctx: RequestContext, cost: int, kwargs: dict[str, Any]) -> bool:
        """Write the deferred settlement to this worker's spool file (fsynced) before the
        answer ends, so it survives the worker (another one replays it, see spool.py); False
        when the write failed (logged, counted)."""
        try:
            await asyncio.to_thread(self.spool.append, ctx.request_id, ctx.account_id, cost, kwargs)
        except OSError as exc:
            self.state.metrics.inc("settle_spool_failed_total")
            log_event(
                self.state.log,
                "settlement spool write failed",
                40,
                request_id=ctx.request_id,
                error=type(exc).__name__,
            )
            return False
        return True

    async def _respool(self) -> None:
        """Write again the deferred settlements whose spool write failed (still pending)."""
        for rid in sorted(self._unspooled):
            entry = self._pending.get(rid)
            if entry is None:
                self._unspooled.discard(rid)
                continue
            ctx, kw = entry
            kw = dict(kw)
            cost = kw.pop("cost")
            if not await self._spool_deferred(ctx, cost, kw):
                return  # the spool still fails: next round
            self._unspooled.discard(rid)
            log_event(self.state.log, "deferred settlement spooled", request_id=rid)

    def _landed(self, request_id: str) -> None:
        self._pending.pop(request_id, None)
        self._unspooled.discard(request_id)
        try:
            self.spool.done(request_id)
        except OSError as exc:  # the spooled record is replayed later: a no-op then
            log_event(
                self.state.log, "settlement spool update failed", 30, error=type(exc).__name__
            )

    async def _retry_pending(self, *, rounds: int | None = None, interval: float = 1.0) -> None:
        st = self.state
        n = 0
        while self._pending and (rounds is None or n < rounds):
            n += 1
            await asyncio.sleep(interval)
            if self._unspooled:
                await self._respool()
            for rid, (ctx, kw) in list(self._pending.items()):
                kw = dict(kw)
                cost = kw.pop("cost")
                try:
                    res = await st.runner.run(ledger.settle, rid, ctx.account_id, cost, **kw)
                except Exception as exc:  # noqa: BLE001 - keep trying
                    log_event(st.log, "deferred settlement failed", 30, error=type(exc).__name__)
                    break
                self.reservations.settled(rid, cost if res.duplicate else res.charged_micros)
                self._landed(rid)
                log_event(st.log, "deferred settlement done", request_id=rid)

    async def drain(self, timeout_s: float = 5.0) -> int:
        """At shutdown: wait for settlements in progress, retry deferred ones for up to
        ``timeout_s``, write again to the spool those whose spool write had failed; return how
        many remain unsettled (those in the spool file stay there for another worker to replay
        once this process has exited; any the spool still refuses are logged as lost, one line
        each with its request id, account, model and cost)."""
        if self.active:  # cancelled requests settle what they relayed before ending
            await asyncio.wait(set(self.active), timeout=timeout_s)
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=timeout_s)
        if self._first_writer is not None and not self._first_writer.done():
            await asyncio.wait({self._first_writer}, timeout=timeout_s)
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._retrier is not None and not self._retrier.done():
            self._retrier.cancel()
            await asyncio.gather(self._retrier, return_exceptions=True)
        if self._pending:
            rounds = max(1, int(timeout_s / 0.25))
            await self._retry_pending(rounds=rounds, interval=0.25)
        if self._unspooled:
            await self._respool()
        if self._pending:
            lost = sorted(self._unspooled)
            spooled = len(self._pending) - len(lost)
            if spooled:
                log_event(self.state.log, "settlements left in the spool", 40, count=spooled)
            for rid in lost:  # what an operator needs to bill it by hand
                ctx, kw = self._pending[rid]
                log_event(
                    self.state.log,
                    "deferred settlement lost: neither the database nor the spool took it",
                    50,
                    request_id=rid,
                    account=ctx.account_id,
                    model=ctx.model,
                    cost_micros=kw["cost"],
                )
        await self.reservations.aclose()
        await self.leases.aclose()
        self.spool.close()
        return len(self._pending)
