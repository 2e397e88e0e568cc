"""Hold leases of the requests a worker is running.

A hold counts only until its ``expires_at`` (``HOLD_TTL_S`` after admission); a sweeper releases
an expired hold that delivered nothing. A stream's progress updates extend its lease once output
flows, but a request still waiting for its upstream — a non-streaming answer, or a stream before
its first output — had nothing extending it: past ``HOLD_TTL_S`` its hold stopped counting (and
was released), although the request was alive and would be charged.

:class:`HoldLeases` keeps, per running request, when its lease was last extended; a background
task wakes every half lease interval and extends, in one write (:func:`ledger.renew_many`), the
leases not extended for a whole interval (``HOLD_TTL_S / 3``, at least 0.2 s).
"""

from __future__ import annotations

import asyncio
import time

from dexto.gateway import ledger
from dexto.gateway.logs import log_event
from dexto.gateway.state import GatewayState

__all__ = ["HoldLeases"]


class HoldLeases:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._since: dict[str, float] = {}  # request id → monotonic time of its last lease
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0  # leases extended (writes that found their hold)

    def interval(self) -> float:
        """Seconds between lease extensions of a running request."""
        return max(0.2, self.state.settings.hold_ttl_s / 3)

    def hold(self, request_id: str) -> None:
        """The request's hold was just placed: keep its lease while it runs."""
        self._since[request_id] = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._renew())

    def end(self, request_id: str) -> None:
        """The request ended (settled, released or failed): its lease is no longer kept."""
        self._since.pop(request_id, None)

    async def _renew(self) -> None:
        st = self.state
        while self._since:
            step = self.interval()
            await asyncio.sleep(step / 2)
            now = time.monotonic()
            due = [rid for rid, since in self._since.items() if now - since >= step]
            if not due:
                continue
            for rid in due:
                self._since[rid] = now
            expires_at = ledger.now_ms() + st.settings.hold_ttl_s * 1000
            try:
                found = await st.runner.run(ledger.renew_many, due, expires_at)
            except Exception as exc:  # noqa: BLE001 - retried next round; the settle still bills
                log_event(st.log, "hold lease renewal failed", 30, error=type(exc).__name__)
                for rid in due:  # due again next round
                    if rid in self._since:
                        self._since[rid] = now - step
                continue
            self.renewals += len(found)

    async def aclose(self) -> None:
        """Stop the background task (at shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
