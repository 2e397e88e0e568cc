"""Device login for ``dexto login`` (RFC 8628 style): code → approval page → key.

1. ``POST /auth/device/code`` → ``{device_code, user_code, verification_uri,
   verification_uri_complete, expires_in, interval}``.
2. The user opens ``/device``, enters the user code, email and password, approves.
3. ``POST /auth/device/token`` with ``{"device_code": …}`` → 200 ``{"apiKey", "account"}`` once;
   before approval 400 ``AUTHORIZATION_PENDING`` (``SLOW_DOWN`` when polled too fast), then
   ``ACCESS_DENIED`` / ``EXPIRED_TOKEN``.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from typing import Any

from dexto.gateway import accounts
from dexto.gateway.db import Conn
from dexto.gateway.ledger import now_ms
from dexto.gateway.passwords import verify_password

__all__ = [
    "approve",
    "consume",
    "create_code",
    "lookup",
    "normalize_user_code",
    "record",
    "render_page",
]

EXPIRES_S = 900
INTERVAL_S = 5
MAX_FAILURES = 5
_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def _hash(device_code: str) -> str:
    return hashlib.sha256(device_code.encode("utf-8")).hexdigest()


def normalize_user_code(text: str) -> str:
    raw = "".join(c for c in text.upper() if c.isalpha())
    return f"{raw[:4]}-{raw[4:8]}" if len(raw) == 8 else ""


def create_code(conn: Conn, base_url: str) -> dict[str, Any]:
    device_code = secrets.token_urlsafe(32)
    user_code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    user_code = f"{user_code[:4]}-{user_code[4:]}"
    now = now_ms()
    with conn.write():
        conn.execute(
            "INSERT INTO device_codes (device_code_hash, user_code, status, created_at, expires_at)"
            " VALUES (?, ?, 'pending', ?, ?)",
            (_hash(device_code), user_code, now, now + EXPIRES_S * 1000),
        )
    return {
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": f"{base_url}/device",
        "verification_uri_complete": f"{base_url}/device?user_code={user_code}",
        "expires_in": EXPIRES_S,
        "interval": INTERVAL_S,
    }


def lookup(conn: Conn, user_code: str, email: str) -> tuple[bool, str | None, str | None]:
    """(code is pending, account id, password hash) for an approval attempt."""
    code = normalize_user_code(user_code)
    with conn.read():
        row = (
            conn.one("SELECT status, expires_at FROM device_codes WHERE user_code = ?", (code,))
            if code
            else None
        )
    if row is None or row[0] != "pending" or int(row[1]) <= now_ms():
        return False, None, None
    acct = accounts.find_account_by_email(conn, email) if email.strip() else None
    return True, (acct.id if acct else None), (acct.password_hash if acct else None)


def record(conn: Conn, user_code: str, account_id: str | None, *, deny: bool = False) -> str:
    """Record an approval attempt: ``account_id`` None means the credentials were wrong.

    Returns "approved", "denied", "bad_credentials", "unknown_code" or "locked" (the code is
    denied after :data:`MAX_FAILURES` wrong attempts).
    """
    code = normalize_user_code(user_code)
    with conn.write():
        if account_id is None:
            conn.execute(
                "UPDATE device_codes SET failures = failures + 1,"
                " status = CASE WHEN failures + 1 >= ? THEN 'denied' ELSE status END"
                " WHERE user_code = ? AND status = 'pending'",
                (MAX_FAILURES, code),
            )
            row2 = conn.one("SELECT status FROM device_codes WHERE user_code = ?", (code,))
            return "locked" if row2 and row2[0] == "denied" else "bad_credentials"
        cur = conn.execute(
            "UPDATE device_codes SET status = ?, account_id = ? WHERE user_code = ?"
            " AND status = 'pending' AND expires_at > ?",
            ("denied" if deny else "approved", account_id, code, now_ms()),
        )
        if not cur.rowcount:
            return "unknown_code"
    return "denied" if deny else "approved"


def approve(conn: Conn, user_code: str, email: str, password: str, *, deny: bool = False) -> str:
    """Check the credentials and :func:`record` the attempt (one call; used by tests/tools)."""
    pending, account_id, pw_hash = lookup(conn, user_code, email)
    if not pending:
        return "unknown_code"
    ok = verify_password(password, pw_hash) and account_id is not None
    return record(conn, user_code, account_id if ok else None, deny=deny)


def consume(conn: Conn, device_code: str) -> tuple[str, dict[str, Any] | None]:
    """Poll: ("ok", {apiKey, account}) once approved; else (error code, None)."""
    now = now_ms()
    h = _hash(device_code)
    with conn.write():
        row = conn.one(
            "SELECT status, account_id, expires_at, last_poll_at FROM device_codes"
            " WHERE device_code_hash = ?",
            (h,),
        )
        if row is None:
            return "INVALID_GRANT", None
        status, account_id, expires_at, last_poll = row[0], row[1], int(row[2]), int(row[3])
        if status == "consumed":
            return "INVALID_GRANT", None
        if status == "denied":
            return "ACCESS_DENIED", None
        if expires_at <= now:
            return "EXPIRED_TOKEN", None
        conn.execute(
            "UPDATE device_codes SET last_poll_at = ? WHERE device_code_hash = ?", (now, h)
        )
        if status == "pending":
            too_fast = last_poll and now - last_poll < (INTERVAL_S - 4) * 1000
            return ("SLOW_DOWN" if too_fast else "AUTHORIZATION_PENDING"), None
        conn.execute("UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = ?", (h,))
    acct = accounts.find_account(conn, str(account_id))
    if acct is None:
        return "INVALID_GRANT", None
    info, key = accounts.create_key(conn, acct.id, name="dexto login")
    return "ok", {"apiKey": key, "keyId": info["id"], "account": acct.public()}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dexto — approve device</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;font-size:1rem}}
button{{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}}.msg{{padding:.6rem;background:#eef}}
</style></head><body>
<h1>Sign in to approve <code>dexto login</code></h1>
{message}
<form method="post" action="/device">
<input type="hidden" name="csrf" value="{csrf}">
<label for="user_code">Code shown in your terminal</label>
<input id="user_code" name="user_code" value="{user_code}" autocomplete="off" required>
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button name="action" value="approve" type="submit">Approve</button>
<button name="action" value="deny" type="submit">Deny</button>
</form></body></html>
"""


def render_page(user_code: str = "", message: str = "", csrf: str = "") -> str:
    msg = f'<p class="msg" role="status">{html.escape(message)}</p>' if message else ""
    return _PAGE.format(
        user_code=html.escape(user_code, quote=True),
        message=msg,
        csrf=html.escape(csrf, quote=True),
    )
