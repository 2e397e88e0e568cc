"""Money moves finish even when the request task is cancelled (shutdown past the deadline)."""

from __future__ import annotations

import asyncio

import pytest

from dexto.gateway.settlement import uncancellable


def test_uncancellable_finishes_the_operation_then_reraises_the_cancel() -> None:
    done: list[str] = []

    async def settle() -> str:
        await asyncio.sleep(0.05)
        done.append("settled")
        return "ok"

    async def request() -> str:
        return await uncancellable(settle())

    async def main() -> None:
        task = asyncio.ensure_future(request())
        await asyncio.sleep(0.01)
        task.cancel()  # twice: a second cancel while finishing must not cut it either
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert done == ["settled"]

    asyncio.run(main())


def test_uncancellable_returns_the_result_and_propagates_errors() -> None:
    async def ok() -> int:
        await asyncio.sleep(0)
        return 7

    async def boom() -> int:
        await asyncio.sleep(0)
        raise LookupError("no account")

    assert asyncio.run(uncancellable(ok())) == 7
    with pytest.raises(LookupError):
        asyncio.run(uncancellable(boom()))
