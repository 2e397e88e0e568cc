"""Schema for login throttling and the device page's CSRF secret (registered in
:data:`dexto.gateway.migrations.MIGRATIONS`)."""

from __future__ import annotations

__all__ = ["login_schema"]


def login_schema(dialect: str) -> list[str]:
    return [
        # One row per throttled subject: "acct:<sha256 of the email>", "ip:<address>" (login
        # failures) or "code:<address>" (device codes issued).
        """CREATE TABLE login_throttle (
            subject TEXT PRIMARY KEY,
            failures INTEGER NOT NULL DEFAULT 0,
            first_at BIGINT NOT NULL,
            last_at BIGINT NOT NULL,
            blocked_until BIGINT NOT NULL DEFAULT 0)""",
        "CREATE INDEX login_throttle_last ON login_throttle(last_at)",
        "CREATE INDEX device_codes_expiry ON device_codes(expires_at)",
        """CREATE TABLE gateway_secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            created_at BIGINT NOT NULL)""",
    ]
