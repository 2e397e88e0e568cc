"""Money is integer micro-USD (1 USD = 1_000_000). Parsing is strict; no floats in the ledger."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from dexto.errors import ConfigError

__all__ = [
    "MICROS_PER_USD",
    "ceil_micros",
    "format_usd",
    "format_usd_cents",
    "parse_usd",
]

MICROS_PER_USD = 1_000_000
_AMOUNT = re.compile(r"^\$?([0-9]*)(?:\.([0-9]*))?$")
_MAX_USD = 10**9  # a sanity ceiling for one top-up: one billion dollars


def parse_usd(text: str, *, field: str = "usd", allow_zero: bool = False) -> int:
    """Parse a user-written USD amount (``"12"``, ``"0.25"``, ``"$5.000001"``) into micro-USD.

    Refuses negative, non-numeric, non-finite values and more than 6 decimal places with a
    :class:`ConfigError` that names the field and the fix.
    """
    raw = str(text).strip()
    fix = "Give a non-negative USD amount with at most 6 decimals, e.g. 10 or 0.25."
    if raw.startswith("-"):
        raise ConfigError(f"amount {raw!r} is negative", field=field, fix=fix)
    m = _AMOUNT.match(raw)
    if not m or not (m.group(1) or m.group(2)):
        raise ConfigError(f"amount {raw!r} is not a number", field=field, fix=fix)
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > 6:
        raise ConfigError(
            f"amount {raw!r} has more than 6 decimal places (the ledger counts micro-dollars)",
            field=field,
            fix=fix,
        )
    if int(whole or "0") >= _MAX_USD:
        raise ConfigError(f"amount {raw!r} is too large", field=field, fix=fix)
    micros = int(whole or "0") * MICROS_PER_USD + int((frac + "000000")[:6])
    if micros == 0 and not allow_zero:
        raise ConfigError(f"amount {raw!r} is zero", field=field, fix=fix)
    return micros


def format_usd(micros: int) -> str:
    """Exact USD decimal string with 6 decimals: ``1234567`` → ``"1.234567"``."""
    sign = "-" if micros < 0 else ""
    q, r = divmod(abs(int(micros)), MICROS_PER_USD)
    return f"{sign}{q}.{r:06d}"


def format_usd_cents(micros: int) -> str:
    """Human form with 2 decimals, truncated toward zero (never shows more than is there)."""
    sign = "-" if micros < 0 else ""
    cents = abs(int(micros)) // 10_000
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def ceil_micros(usd: Decimal | float | int | str) -> int:
    """USD amount (as reported by an upstream) → micro-USD, rounded up; negative/invalid → 0."""
    try:
        value = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    except (InvalidOperation, ValueError):
        return 0
    if not value.is_finite() or value <= 0:
        return 0
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))
