"""Run a synchronous event stream (boto3's) in worker threads, one event at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager

import anyio.to_thread

from dexto.llm.execution._sse import Event

__all__ = ["threaded_stream"]

_END = ("", "")


@asynccontextmanager
async def threaded_stream(
    cm: AbstractContextManager[tuple[Mapping[str, str], Iterator[Event]]],
) -> AsyncIterator[tuple[Mapping[str, str], AsyncIterator[Event]]]:
    headers, events = await anyio.to_thread.run_sync(cm.__enter__)
    try:
        yield headers, _pump(events)
    finally:
        await anyio.to_thread.run_sync(cm.__exit__, None, None, None)


async def _pump(events: Iterator[Event]) -> AsyncIterator[Event]:
    while True:
        ev = await anyio.to_thread.run_sync(next, events, _END)
        if ev is _END:
            return
        yield ev
