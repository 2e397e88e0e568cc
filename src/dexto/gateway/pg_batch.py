"""Group commit of the chat path's admissions and settlements on PostgreSQL, per worker.

:meth:`PgBatcher.submit` queues one call (its arguments built by :data:`pg_ledger.BATCHED`) and
returns a future. Admissions and settlements share one queue with at most one statement in
flight: when a call is queued and none is running, a drain task starts; it waits one loop
iteration (so the calls made during it join), takes up to :attr:`PgBatcher.max_batch` calls and
runs them as one statement — the single-item function for one call, schema v6's
``dexto_step_many`` (:func:`pg_ledger.step_many`: the settlements in queue order, then the
admissions in queue order) for more — while further calls queue for the next round. Every call
of a batch was pending when it started, so running its settlements before its admissions is one
of the orders in which the calls could have run one after another. When the pool
has no flush transaction running or awaited (:meth:`PgPool.flush_idle`, and
:attr:`PgBatcher.sync_when_idle`), the statement commits under the session's
``synchronous_commit`` itself (:attr:`PgPool.commit_mode`, see :mod:`pg_ledger`), one round trip,
and its callers get their outcomes when it returns. Otherwise it commits without waiting for the
WAL flush and its callers get their outcomes once :meth:`PgPool.barrier` returned (or its error,
if it failed): a flush already in flight may have started before this commit, so the batch
waits for the next one.

A batch statement that fails with an error that does not mean the database is unavailable (see
:func:`db.is_unavailable`) wrote nothing (it was one transaction): its calls are run again one by
one with the single-item function, settlements then admissions, so an item that fails gets its
own error and the others their results. A batch that fails as unavailable gives every caller a
:class:`DatabaseUnavailable` (the runner then opens an outage). The futures are resolved by the
drain task, never by the callers: a cancelled caller waits for its future (see
:func:`await_outcome`), so the cancellation surfaces only once its call's outcome is known.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dexto.gateway.db import DatabaseUnavailable, describe, is_unavailable
from dexto.gateway.pg_ledger import BATCHED, OneFn, Params, step_many
from dexto.gateway.pg_pool import PgPool

__all__ = ["MAX_BATCH", "PgBatcher", "await_outcome"]

T = TypeVar("T")
MAX_BATCH = 64
# one call: its single-item function, whether it is a settlement, its arguments, its future
_Item = tuple[OneFn, bool, Params, "asyncio.Future[Any]"]


class PgBatcher:
    def __init__(self, pool: PgPool, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.max_batch = max(1, max_batch)
        self._items: list[_Item] = []
        self._drain: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.statements = 0  # batch or single-item statements run (fallbacks not included)
        self.items = 0  # calls they carried
        self.fallbacks = 0  # batches run again one by one
        # With no flush running or awaited, a statement commits synchronously itself (one round
        # trip) instead of asynchronously followed by a flush of its own (two).
        self.sync_when_idle = True
        self.synced = 0  # statements that committed synchronously

    def submit(self, impl: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> asyncio.Future[T]:
        """Queue one call of ``impl`` (a key of :data:`pg_ledger.BATCHED`); its future gets the
        call's result or exception once the call is durable (or failed)."""
        build, one, settles = BATCHED[impl]
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._items.append((one, settles, build(*args, **kw), fut))
        if self._drain is None or self._drain.done():
            self._drain = self._spawn(self._drain_queue())
        return fut

    def _spawn(self, aw: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain_queue(self) -> None:
        while self._items:
            await asyncio.sleep(0)  # the calls made during this loop iteration join the batch
            batch = self._items[: self.max_batch]
            del self._items[: self.max_batch]
            # the order the statement runs them in: settlements, then admissions
            batch = [item for item in batch if item[1]] + [item for item in batch if not item[1]]
            futures = [item[3] for item in batch]
            commit = self.pool.commit_mode
            if not (self.sync_when_idle and commit is not None and self.pool.flush_idle()):
                commit = None
            try:
                outcomes = await self._run(batch, commit)
            except BaseException as exc:  # cancelled (the loop is closing): nobody waits forever
                outcomes = [_unavailable(exc) for _ in batch]
                await self._finish(futures, outcomes)
                raise
            if commit is not None:
                self.synced += 1
                _resolve(futures, outcomes, None)
            else:
                self._spawn(self._finish(futures, outcomes))

    async def _run(self, batch: list[_Item], commit: str | None) -> list[Any]:
        """Each call's result or exception (an exception instance of its own per call), in the
        batch's order (settlements first); with ``commit``, each statement commits under that
        ``synchronous_commit``."""
        self.statements += 1
        self.items += len(batch)
        try:
            if len(batch) == 1:
                one, _, params, _ = batch[0]
                return [await self.pool.run(one, params, commit)]
            settles = [params for _, is_settle, params, _ in batch if is_settle]
            admits = [params for _, is_settle, params, _ in batch if not is_settle]
            settled, admitted = await self.pool.run(step_many, settles, admits, commit)
            return [*settled, *admitted]
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            if is_unavailable(exc):
                return [_unavailable(exc) for _ in batch]
        # the batch's transaction rolled back: each call again, alone, in order
        self.fallbacks += 1
        outcomes: list[Any] = []
        for one, _, params, _ in batch:
            try:
                outcomes.append(await self.pool.run(one, params, commit))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _finish(self, futures: list[asyncio.Future[Any]], outcomes: list[Any]) -> None:
        """Wait until the batch's commit is durable, then hand each caller its outcome."""
        flush_error: BaseException | None = None
        if any(not isinstance(o, BaseException) for o in outcomes):
            try:
                await self.pool.barrier()
            except BaseException as exc:  # noqa: BLE001 - given to the callers
                flush_error = exc
        _resolve(futures, outcomes, flush_error)

    async def aclose(self) -> None:
        """Wait until every queued call has its outcome."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def _resolve(
    futures: list[asyncio.Future[Any]], outcomes: list[Any], flush_error: BaseException | None
) -> None:
    """Hand each caller its outcome (``flush_error``'s instead of a result, when given)."""
    for fut, outcome in zip(futures, outcomes, strict=True):
        if fut.done():
            continue
        if flush_error is not None and not isinstance(outcome, BaseException):
            outcome = _unavailable(flush_error)
        if isinstance(outcome, asyncio.CancelledError):
            fut.cancel()
        elif isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


def _unavailable(exc: BaseException) -> BaseException:
    """An exception of its own for one caller of a batch that failed as a whole."""
    if is_unavailable(exc):
        return DatabaseUnavailable(f"a ledger batch failed: {describe(exc)}")
    if isinstance(exc, asyncio.CancelledError):
        return asyncio.CancelledError()
    return RuntimeError(f"the WAL flush failed: {type(exc).__name__}")


async def await_outcome(fut: asyncio.Future[T]) -> T:
    """``await fut`` (resolved by the batcher); if the caller is cancelled meanwhile, wait for
    the outcome anyway, then pass the cancellation on."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if fut.cancelled():
            raise
        while not fut.done():
            try:
                await asyncio.wait({fut})
            except asyncio.CancelledError:
                continue
        if not fut.cancelled():
            fut.exception()  # retrieved: the caller gets the cancellation instead
        raise
