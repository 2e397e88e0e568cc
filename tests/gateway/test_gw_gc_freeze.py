"""Start-up objects are frozen out of the garbage collector while the gateway serves."""

from __future__ import annotations

import gc

import httpx
from _gwhelpers import start_gateway

from dexto.devtools.fake_upstream import FakeUpstream


def test_start_up_objects_are_frozen_while_serving_and_thawed_at_shutdown(
    sqlite_url: str, fake: tuple[FakeUpstream, str]
) -> None:
    gc.unfreeze()
    with start_gateway(sqlite_url, fake[1]) as gw:
        # the objects of start-up (the app's among them): a full collection does not walk them
        assert gc.get_freeze_count() > 10_000
        r = httpx.post(
            gw.v1 + "/chat/completions",
            headers=gw.auth(),
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200
        gc.collect()
        assert gc.get_freeze_count() > 10_000  # a collection does not thaw them
    assert gc.get_freeze_count() == 0
