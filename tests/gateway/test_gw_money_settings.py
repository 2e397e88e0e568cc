"""Money parsing (table-driven) and settings precedence."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dexto._secret import Secret
from dexto.errors import ConfigError
from dexto.gateway.money import ceil_micros, format_usd, format_usd_cents, parse_usd
from dexto.gateway.settings import DEFAULTS, ENV_VARS, GatewaySettings


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("10", 10_000_000),
        ("0.25", 250_000),
        ("$5", 5_000_000),
        ("1.000001", 1_000_001),
        (".5", 500_000),
        ("3.", 3_000_000),
        (" 7.10 ", 7_100_000),
        ("999999999.999999", 999_999_999_999_999),
    ],
)
def test_parse_usd_accepts(text: str, micros: int) -> None:
    assert parse_usd(text) == micros


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("abc", "not a number"),
        ("", "not a number"),
        (".", "not a number"),
        ("1e3", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("1,5", "not a number"),
        ("0x10", "not a number"),
        ("１２", "not a number"),
        ("1.0000001", "more than 6 decimal"),
        ("0.1234567", "more than 6 decimal"),
        ("0", "zero"),
        ("0.000000", "zero"),
        ("1000000000", "too large"),
    ],
)
def test_parse_usd_refuses(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_usd(text, field="--usd")
    assert why in info.value.message
    assert "--usd" in info.value.message
    assert info.value.fix


def test_zero_allowed_when_asked() -> None:
    assert parse_usd("0", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("micros", "text", "cents"),
    [
        (0, "0.000000", "0.00"),
        (1, "0.000001", "0.00"),
        (1_234_567, "1.234567", "1.23"),
        (-499_999, "-0.499999", "-0.49"),
        (10_000_000, "10.000000", "10.00"),
    ],
)
def test_format(micros: int, text: str, cents: str) -> None:
    assert format_usd(micros) == text
    assert format_usd_cents(micros) == cents


@pytest.mark.parametrize(
    ("usd", "micros"),
    [
        ("0.0000001", 1),
        (1.32e-05, 14),
        (Decimal("0.000014"), 14),
        (0, 0),
        (-1, 0),
        ("x", 0),
        (float("nan"), 0),
    ],
)
def test_ceil_micros(usd: object, micros: int) -> None:
    assert ceil_micros(usd) == micros  # type: ignore[arg-type]


def test_settings_precedence_flags_env_defaults(tmp_path: object) -> None:
    env = {
        "DEXTO_GATEWAY_DB": "sqlite:///env.db",
        "DEXTO_GATEWAY_PORT": "9000",
        "DEXTO_GATEWAY_UPSTREAM_KEY": "sk-env",
        "DEXTO_HOME": "/tmp/h",
    }
    s = GatewaySettings.resolve({"port": 9100, "db_url": None}, env=env)
    assert s.port == 9100  # flag wins
    assert s.db_url == "sqlite:///env.db"  # env beats default
    assert s.workers == DEFAULTS["workers"]
    assert isinstance(s.upstream_key, Secret) and s.upstream_key.reveal() == "sk-env"
    assert "sk-env" not in repr(s)
    d = GatewaySettings.resolve({}, env={"DEXTO_HOME": "/tmp/h"})
    assert d.db_url == "sqlite:////tmp/h/gateway.db"
    assert d.port == 8787 and d.upstream_url == "https://openrouter.ai/api/v1"


def test_settings_round_trip_through_env() -> None:
    s = GatewaySettings.resolve(
        {"db_url": "sqlite:///x.db", "upstream_key": "sk-1", "auto_migrate": False}, env={}
    )
    again = GatewaySettings.resolve({}, env=s.to_env())
    assert again == s
    assert set(s.to_env()) <= set(ENV_VARS.values())


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DEXTO_GATEWAY_PORT", "eighty"),
        ("DEXTO_GATEWAY_WORKERS", "-2"),
        ("DEXTO_GATEWAY_RATE_LIMIT_RPS", "nan"),
        ("DEXTO_GATEWAY_AUTO_MIGRATE", "maybe"),
        ("DEXTO_GATEWAY_UPSTREAM_URL", "ftp://x"),
    ],
)
def test_settings_bad_values(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        GatewaySettings.resolve({}, env={var: value})
    assert var in info.value.message
