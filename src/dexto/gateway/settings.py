"""One typed settings object for the gateway. Precedence: flags > environment > defaults.

Every default lives in :data:`DEFAULTS`; every environment variable in :data:`ENV_VARS`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from dexto._secret import Secret
from dexto.config.paths import dexto_home
from dexto.errors import ConfigError

__all__ = ["DEFAULTS", "ENV_VARS", "GatewaySettings", "default_db_url", "default_spool_dir"]

# field name -> default (the one place defaults are written). ``db_url`` None = under DEXTO_HOME.
DEFAULTS: dict[str, Any] = {
    "db_url": None,
    "upstream_url": "https://openrouter.ai/api/v1",
    "upstream_key": None,
    "admin_token": None,
    "redis_url": None,
    "redis_prefix": "dexto:gw:",
    "host": "127.0.0.1",
    "port": 8787,
    "workers": 1,
    "public_url": None,  # used for the device-login verification URL; else derived per request
    "rate_limit_rps": 20.0,  # per-key token bucket refill rate
    "rate_limit_burst": 40,  # per-key bucket size
    "hold_ttl_s": 900,  # a hold not settled by then stops counting (worker died)
    "sweep_interval_s": 30.0,
    "drain_s": 30.0,  # on SIGTERM, in-flight requests get this long to finish (then: estimated)
    "min_hold_usd_micros": 1_000,  # $0.001: the smallest hold
    "default_max_tokens": 4096,  # completion allowance when the request sets no max_tokens
    "unknown_model_hold_micros": 50_000,  # $0.05: hold for a model with no listed price
    "overdraft_limit_micros": 500_000,  # $0.50: hard floor for any balance is -this
    "max_body_bytes": 4 * 1024 * 1024,
    "upstream_connect_timeout_s": 10.0,
    "upstream_timeout_s": 300.0,
    "models_ttl_s": 300.0,
    "db_pool_size": 8,
    "auto_migrate": True,
    "log_level": "INFO",
    "login_backoff_s": 30.0,  # first device-login block after repeated failures (doubles)
    "device_codes_per_minute": 10,  # device codes issued per client address per minute
    "redis_lease_max": 8,  # tokens one Redis call may lease to a worker (1 = a call per request)
    "access_log_sample": 1.0,  # share of successful requests that get an access log line
    "spool_dir": None,  # deferred settlements on disk; None = beside the SQLite file or home
    "reserve_requests": 16,  # PostgreSQL: a key's reservation covers this many holds (0 = none)
    "reserve_max_age_s": 1.0,  # a reservation admits nothing once this old (then replaced)
}

# field name -> environment variable
ENV_VARS: dict[str, str] = {
    "db_url": "DEXTO_GATEWAY_DB",
    "upstream_url": "DEXTO_GATEWAY_UPSTREAM_URL",
    "upstream_key": "DEXTO_GATEWAY_UPSTREAM_KEY",
    "admin_token": "DEXTO_GATEWAY_ADMIN_TOKEN",
    "redis_url": "DEXTO_GATEWAY_REDIS_URL",
    "redis_prefix": "DEXTO_GATEWAY_REDIS_PREFIX",
    "host": "DEXTO_GATEWAY_HOST",
    "port": "DEXTO_GATEWAY_PORT",
    "workers": "DEXTO_GATEWAY_WORKERS",
    "public_url": "DEXTO_GATEWAY_PUBLIC_URL",
    "rate_limit_rps": "DEXTO_GATEWAY_RATE_LIMIT_RPS",
    "rate_limit_burst": "DEXTO_GATEWAY_RATE_LIMIT_BURST",
    "hold_ttl_s": "DEXTO_GATEWAY_HOLD_TTL_S",
    "sweep_interval_s": "DEXTO_GATEWAY_SWEEP_INTERVAL_S",
    "drain_s": "DEXTO_GATEWAY_DRAIN_S",
    "min_hold_usd_micros": "DEXTO_GATEWAY_MIN_HOLD_MICROS",
    "default_max_tokens": "DEXTO_GATEWAY_DEFAULT_MAX_TOKENS",
    "unknown_model_hold_micros": "DEXTO_GATEWAY_UNKNOWN_MODEL_HOLD_MICROS",
    "overdraft_limit_micros": "DEXTO_GATEWAY_OVERDRAFT_LIMIT_MICROS",
    "max_body_bytes": "DEXTO_GATEWAY_MAX_BODY_BYTES",
    "upstream_connect_timeout_s": "DEXTO_GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S",
    "upstream_timeout_s": "DEXTO_GATEWAY_UPSTREAM_TIMEOUT_S",
    "models_ttl_s": "DEXTO_GATEWAY_MODELS_TTL_S",
    "db_pool_size": "DEXTO_GATEWAY_DB_POOL_SIZE",
    "auto_migrate": "DEXTO_GATEWAY_AUTO_MIGRATE",
    "log_level": "DEXTO_GATEWAY_LOG_LEVEL",
    "login_backoff_s": "DEXTO_GATEWAY_LOGIN_BACKOFF_S",
    "device_codes_per_minute": "DEXTO_GATEWAY_DEVICE_CODES_PER_MINUTE",
    "redis_lease_max": "DEXTO_GATEWAY_REDIS_LEASE_MAX",
    "access_log_sample": "DEXTO_GATEWAY_ACCESS_LOG_SAMPLE",
    "spool_dir": "DEXTO_GATEWAY_SPOOL_DIR",
    "reserve_requests": "DEXTO_GATEWAY_RESERVE_REQUESTS",
    "reserve_max_age_s": "DEXTO_GATEWAY_RESERVE_MAX_AGE_S",
}


def default_db_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{dexto_home(env) / 'gateway.db'}"


def default_spool_dir(db_url: str, env: Mapping[str, str] | None = None) -> str:
    """Where deferred settlements are spooled: ``<file>.spool`` beside a SQLite file; for
    PostgreSQL ``$DEXTO_HOME/gateway-spool/<12 hex of the URL without credentials>``, so
    gateways of different databases on one host never replay each other's settlements."""
    from dexto.gateway.db import Database

    path = Database(db_url).path
    if path is not None:
        return str(path.with_name(path.name + ".spool"))
    parts = urlsplit(db_url)
    try:
        netloc = (parts.hostname or "") + ("" if parts.port is None else f":{parts.port}")
    except ValueError:  # a port Python cannot read (several hosts, a typo): libpq judges it
        netloc = parts.netloc.rpartition("@")[2]
    digest = hashlib.sha256(parts._replace(netloc=netloc).geturl().encode()).hexdigest()[:12]
    return str(dexto_home(env) / "gateway-spool" / digest)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    db_url: str
    upstream_url: str = DEFAULTS["upstream_url"]
    upstream_key: Secret | None = None
    admin_token: Secret | None = None
    redis_url: str | None = None
    redis_prefix: str = DEFAULTS["redis_prefix"]
    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    workers: int = DEFAULTS["workers"]
    public_url: str | None = None
    rate_limit_rps: float = DEFAULTS["rate_limit_rps"]
    rate_limit_burst: int = DEFAULTS["rate_limit_burst"]
    hold_ttl_s: int = DEFAULTS["hold_ttl_s"]
    sweep_interval_s: float = DEFAULTS["sweep_interval_s"]
    drain_s: float = DEFAULTS["drain_s"]
    min_hold_usd_micros: int = DEFAULTS["min_hold_usd_micros"]
    default_max_tokens: int = DEFAULTS["default_max_tokens"]
    unknown_model_hold_micros: int = DEFAULTS["unknown_model_hold_micros"]
    overdraft_limit_micros: int = DEFAULTS["overdraft_limit_micros"]
    max_body_bytes: int = DEFAULTS["max_body_bytes"]
    upstream_connect_timeout_s: float = DEFAULTS["upstream_connect_timeout_s"]
    upstream_timeout_s: float = DEFAULTS["upstream_timeout_s"]
    models_ttl_s: float = DEFAULTS["models_ttl_s"]
    db_pool_size: int = DEFAULTS["db_pool_size"]
    auto_migrate: bool = DEFAULTS["auto_migrate"]
    log_level: str = DEFAULTS["log_level"]
    login_backoff_s: float = DEFAULTS["login_backoff_s"]
    device_codes_per_minute: int = DEFAULTS["device_codes_per_minute"]
    redis_lease_max: int = DEFAULTS["redis_lease_max"]
    access_log_sample: float = DEFAULTS["access_log_sample"]
    spool_dir: str | None = None  # None: default_spool_dir(db_url)
    reserve_requests: int = DEFAULTS["reserve_requests"]
    reserve_max_age_s: float = DEFAULTS["reserve_max_age_s"]

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GatewaySettings:
        """Build settings: a flag that is not None wins, then the env var, then the default."""
        env = os.environ if env is None else env
        flags = flags or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.name
            raw: Any = flags.get(name)
            source = f"--{name.replace('_', '-')}"
            if raw is None and ENV_VARS.get(name) and env.get(ENV_VARS[name], "").strip():
                raw = env[ENV_VARS[name]].strip()
                source = ENV_VARS[name]
            if raw is None:
                raw = DEFAULTS[name]
                if name == "db_url":
                    raw = default_db_url(env)
                elif name == "spool_dir":
                    raw = default_spool_dir(str(values["db_url"]), env)
            values[name] = _coerce(name, raw, source)
        if values["workers"] > 1 and str(values["db_url"]).startswith("sqlite:"):
            raise ConfigError(
                f"--workers {values['workers']} needs PostgreSQL: SQLite allows one writer at a"
                " time, so several worker processes would queue on its file lock",
                field="workers",
                fix="Use --workers 1 with SQLite, or --db postgresql://user@host:5432/dbname"
                " for several workers.",
            )
        return cls(**values)

    def with_overrides(self, **changes: Any) -> GatewaySettings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (for worker processes)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name not in ENV_VARS:
                continue
            if isinstance(value, Secret):
                value = value.reveal()
            elif isinstance(value, bool):
                value = "1" if value else "0"
            out[ENV_VARS[f.name]] = str(value)
        return out


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind: type[Any] = type(DEFAULTS[name]) if DEFAULTS[name] is not None else str
    if name in ("upstream_key", "admin_token"):
        if raw is None or isinstance(raw, Secret):
            return raw
        return Secret(str(raw)) if str(raw) else None
    if raw is None:
        return None
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return text in ("1", "true", "yes", "on")
        if kind is int:
            value: Any = int(raw)
            if value < 0:
                raise ValueError(raw)
            if name == "reserve_requests" and value > MAX_RESERVE_REQUESTS:
                raise ConfigError(
                    f"invalid value {raw!r} for {source}: at most {MAX_RESERVE_REQUESTS}",
                    field=name,
                    fix=f"Give 0 (no reservations) to {MAX_RESERVE_REQUESTS}.",
                )
            return value
        if kind is float:
            value = float(raw)
            if not value >= 0 or value == float("inf"):
                raise ValueError(raw)
            return value
    except (TypeError, ValueError):
        raise ConfigError(
            f"invalid value {raw!r} for {source}",
            field=name,
            fix=f"Give a valid non-negative {kind.__name__}.",
        ) from None
    text = str(raw)
    if name in ("upstream_url", "public_url"):
        text = text.rstrip("/")
        _check_url(text, name, source, ("http", "https"), "Use an http(s):// URL.")
    elif name == "redis_url":
        _check_url(
            text,
            name,
            source,
            ("redis", "rediss", "unix"),
            "Use redis://[:password@]host:port/db, rediss://… (TLS) or unix:///path/redis.sock.",
        )
    elif name == "log_level":
        text = text.strip().upper()
        if text not in _LOG_LEVELS:
            raise ConfigError(
                f"invalid log level {raw!r} for {source}",
                field=name,
                fix=f"Use one of {', '.join(_LOG_LEVELS)}.",
            )
    return text


MAX_RESERVE_REQUESTS = 1024  # a reservation of this many holds stays far below BIGINT
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_url(text: str, name: str, source: str, schemes: tuple[str, ...], fix: str) -> None:
    """Refuse a URL of another scheme, without a host (but ``unix:``), or whose port is not a
    number in 1–65535; the message shows it with its password hidden."""
    from dexto._url import host_and_port_ok, redact_url

    scheme = text.partition("://")[0]
    if scheme not in schemes or not host_and_port_ok(text, host_required=scheme != "unix"):
        raise ConfigError(f"invalid URL {redact_url(text)!r} for {source}", field=name, fix=fix)
