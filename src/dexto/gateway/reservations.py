"""Worker reservations: non-streaming admissions on PostgreSQL answered without a database step.

A worker places, with the ordinary admission step (:func:`ledger.admit`), one hold of its own
for a key — a *reservation* of ``amount`` micro-USD, request id ``rsv-…`` — and admits that
key's non-streaming requests against it in memory while ``used + hold ≤ amount``. ``used`` is
the sum of the holds of the requests admitted on it that are still running (a request whose
settlement is deferred counts as running until it lands), plus the charges of those settled
since it was placed (:meth:`Reservations.settled` replaces a request's hold by its charge;
:meth:`Reservations.released` removes it). So what the requests admitted on a reservation can
take from the balance never exceeds ``amount``, which the admission step found available and
every other admission counts as held until the reservation is released.

A reservation is placed, in the background, after a request of a key was admitted with a hold
of its own and the account had at least ``RICHNESS × amount`` available after it (``amount`` =
that request's hold × ``RESERVE_REQUESTS``); none is placed while another is current or being
placed for the key, nor while the worker holds :data:`MAX_PER_KEY` unreleased reservations for
it. A request that does not fit, finds the reservation ``RESERVE_MAX_AGE_S`` old (counted from
before its placement was sent) or comes once this worker has seen the database unavailable,
retires it and takes the ordinary path; a reservation is also retired at that age when no
request comes. A retired reservation is released once no request admitted on it is running.
Reservation holds keep their lease (:class:`HoldLeases`) until released, or until retired with
only deferred settlements left. See docs/gateway.md,
*Worker reservations*.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dexto.gateway import ledger
from dexto.gateway.leases import HoldLeases
from dexto.gateway.logs import log_event
from dexto.gateway.state import GatewayState

__all__ = ["MAX_PER_KEY", "RESERVATION_PREFIX", "RICHNESS", "Reservation", "Reservations"]

RESERVATION_PREFIX = "rsv-"
RICHNESS = 4  # a reservation is placed only if the account has this many times it available
MAX_PER_KEY = 2  # unreleased reservations of one key in one worker (current or retired)


@dataclass(slots=True, eq=False)
class Reservation:
    request_id: str  # its hold's request id
    key_hash: str
    account_id: str
    key_id: str
    amount: int
    balance: int  # the balance when placed, less the charges settled on it since
    placed: float  # time.monotonic() before its admission step was sent
    used: int = 0
    running: dict[str, int] = field(default_factory=dict)  # request id → its hold
    retired: bool = False  # admits nothing more
    released: bool = False  # its release started


class Reservations:
    def __init__(self, state: GatewayState, leases: HoldLeases) -> None:
        self.state = state
        self.leases = leases
        self._current: dict[str, Reservation] = {}  # key hash → the reservation admitting
        self._of: dict[str, Reservation] = {}  # running request id → its reservation
        self._placing: set[str] = set()  # key hashes with a placement in flight
        self._unreleased: dict[str, int] = {}  # key hash → reservations placed, not released
        self._deferred: set[str] = set()  # running requests whose settlement is deferred
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def admit(self, key_hash: str, request_id: str, hold: int) -> ledger.AdmitResult | None:
        """Admit the request on the key's reservation: its result, or None (no reservation,
        it does not fit, the reservation is too old, the database is in an outage)."""
        r = self._current.get(key_hash)
        if r is None:
            return None
        st = self.state
        if (
            r.used + hold > r.amount
            or time.monotonic() - r.placed >= st.settings.reserve_max_age_s
            or st.runner.outage
        ):
            self._retire(r)
            return None
        r.used += hold
        r.running[request_id] = hold
        self._of[request_id] = r
        st.metrics.inc("reserved_admissions_total")
        return ledger.AdmitResult("ok", r.account_id, r.key_id, r.balance, r.amount - r.used)

    def admitted(self, key_hash: str, model: str, hold: int, result: ledger.AdmitResult) -> None:
        """A non-streaming request of the key was admitted with a hold of its own (``result``):
        place a reservation for the key if none is current or being placed and the account is
        rich enough."""
        settings = self.state.settings
        if (
            self._closed
            or settings.reserve_requests <= 0
            or settings.reserve_max_age_s <= 0
            or self.state.runner.pg is None
            or key_hash in self._current
            or key_hash in self._placing
            or self._unreleased.get(key_hash, 0) >= MAX_PER_KEY
        ):
            return
        amount = hold * settings.reserve_requests
        if result.available_micros < RICHNESS * amount:
            return
        self._placing.add(key_hash)
        self._spawn(self._place(key_hash, model, amount))

    def settled(self, request_id: str, charged: int) -> None:
        """The request's charge replaces its hold in ``used`` (if admitted on a reservation)."""
        r = self._of.pop(request_id, None)
        if r is None:
            return
        self._deferred.discard(request_id)
        r.used += charged - r.running.pop(request_id)
        r.balance -= charged
        self._release_if_done(r)

    def deferred(self, request_id: str) -> None:
        """The request's settlement is deferred: it keeps its hold on the reservation (which
        stays unreleased) until :meth:`settled` is called when the settlement lands."""
        r = self._of.get(request_id)
        if r is not None:
            self._deferred.add(request_id)
            self._release_if_done(r)

    def ended(self, request_id: str) -> None:
        """The request's handler returned. If it is still running on a reservation with no
        deferred settlement (an exit that called neither :meth:`settled` nor
        :meth:`released`), its hold is counted as charged and it stops running."""
        r = self._of.get(request_id)
        if r is not None and request_id not in self._deferred:
            self.settled(request_id, r.running[request_id])

    def released(self, request_id: str) -> bool:
        """The request ended uncharged: its hold leaves ``used``. Whether it had been admitted
        on a reservation (else its own hold is released by the caller)."""
        r = self._of.pop(request_id, None)
        if r is None:
            return False
        r.used -= r.running.pop(request_id)
        self._release_if_done(r)
        return True

    async def _place(self, key_hash: str, model: str, amount: int) -> None:
        st = self.state
        rid = RESERVATION_PREFIX + uuid.uuid4().hex
        placed = time.monotonic()  # the key is checked after this: the age counts from here
        try:
            res = await st.runner.run(
                ledger.admit,
                key_hash,
                rid,
                amount,
                ttl_ms=st.settings.hold_ttl_s * 1000,
                model=model,
                prompt_tokens=0,
            )
        except Exception as exc:  # noqa: BLE001 - requests keep the ordinary path
            log_event(st.log, "reservation not placed", 30, error=type(exc).__name__)
            return
        finally:
            self._placing.discard(key_hash)
        if res.status != "ok":
            return
        r = Reservation(rid, key_hash, res.account_id, res.key_id, amount, res.balance_micros,
                        placed)  # fmt: skip
        self._unreleased[key_hash] = self._unreleased.get(key_hash, 0) + 1
        self.leases.hold(rid)
        st.metrics.inc("reservations_placed_total")
        if self._closed or key_hash in self._current:
            self._retire(r)
        else:
            self._current[key_hash] = r
            # retired at its age even if no request comes: an idle worker holds no money
            age = max(0.0, placed + st.settings.reserve_max_age_s - time.monotonic())
            asyncio.get_running_loop().call_later(age, self._retire, r)

    def _retire(self, r: Reservation) -> None:
        r.retired = True
        if self._current.get(r.key_hash) is r:
            del self._current[r.key_hash]
        self._release_if_done(r)

    def _release_if_done(self, r: Reservation) -> None:
        """Release a retired reservation nothing runs on. One on which only deferred
        settlements remain keeps its hold but not its lease, as a request's own hold once its
        handler returned: it stops counting at ``HOLD_TTL_S`` unless they land first."""
        if not r.retired or r.released:
            return
        if r.running and r.running.keys() <= self._deferred:
            self.leases.end(r.request_id)
        if not r.running:
            r.released = True
            left = self._unreleased.get(r.key_hash, 0) - 1
            if left > 0:
                self._unreleased[r.key_hash] = left
            else:
                self._unreleased.pop(r.key_hash, None)
            self._spawn(self._release(r))

    async def _release(self, r: Reservation) -> None:
        """Release its hold; retried (0.5 s, doubling to 5 s) while the database is away, until
        shutdown — after that its hold stops counting at its expiry and a sweeper releases it."""
        st = self.state
        self.leases.end(r.request_id)
        delay = 0.5
        while True:
            try:
                await st.runner.run(ledger.release, r.request_id)
                return
            except Exception as exc:  # noqa: BLE001 - retried; swept at its expiry at worst
                if self._closed:
                    log_event(
                        st.log, "reservation left to expire", 30, request_id=r.request_id,
                        error=type(exc).__name__,
                    )  # fmt: skip
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _spawn(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """At shutdown, after the drain: no more placements; every reservation is retired (and
        released now if nothing runs on it); waits up to ``timeout_s`` for the placements and
        releases in flight, then stops those still retrying. A reservation with requests still
        running (the drain ran out of time) or deferred settlements is left to expire."""
        self._closed = True
        for r in list(self._current.values()):
            self._retire(r)
        deadline = time.monotonic() + timeout_s
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
