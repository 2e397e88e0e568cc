"""Helpers shared by the interop tests."""

from __future__ import annotations

from _gwhelpers import Gateway, ledger_state


def charged_usd(gw: Gateway, request_id: str) -> float:
    """What the ledger charged for ``request_id``, in USD."""
    for rid, amount, _, _ in ledger_state(gw.db_url, gw.account_id).charges:
        if rid == request_id:
            return -amount / 1_000_000
    raise AssertionError(f"no charge for {request_id}")


def no_hold_left(gw: Gateway) -> bool:
    return ledger_state(gw.db_url, gw.account_id).holds == 0


MODEL = "openai/gpt-4o-mini"
BAD_KEY = "dxk_" + "0" * 40
WORDS = "".join(f"w{i} " for i in range(20))
