"""Device-login endpoints: ``POST /auth/device/code``, ``POST /auth/device/token`` and the
approval page ``GET/POST /device``.

The page is protected against cross-site posts twice: the ``Origin`` (or ``Referer``) of a post
must be the gateway's own, and the form must carry the per-page token that the page also set as
a ``SameSite=Strict`` cookie (``ts.nonce.hmac``, signed with a secret shared by all workers,
valid :data:`CSRF_TTL_S`). Login attempts are throttled by :mod:`throttle`; a browser that has
signed in to an account carries a signed ``dexto_device_known`` cookie for it and is exempt from
that account's failure count (so an attacker's guesses cannot lock the holder out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dexto.gateway import device, throttle
from dexto.gateway.http_errors import HttpError
from dexto.gateway.passwords import verify_password
from dexto.gateway.state import GatewayState
from dexto.gateway.validation import json_content_type, json_object_or_error, read_limited

__all__ = ["CSRF_COOKIE", "CSRF_TTL_S", "KNOWN_COOKIE", "make_device_routes"]

CSRF_COOKIE = "dexto_device_csrf"
CSRF_TTL_S = 3600
KNOWN_COOKIE = "dexto_device_known"
KNOWN_TTL_S = 90 * 86400
_FORM_LIMIT = 10_000
_SECURE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "same-origin",
}
_TOKEN_MESSAGES = {
    "AUTHORIZATION_PENDING": "Waiting for approval in the browser.",
    "SLOW_DOWN": "Polling too fast; wait the interval between polls.",
    "ACCESS_DENIED": "The login was denied.",
    "EXPIRED_TOKEN": "The code expired; start `dexto login` again.",
    "INVALID_GRANT": "Unknown, expired or already used device code; start `dexto login` again.",
}
_OUTCOMES = {
    "approved": ("Approved. You can close this page and return to your terminal.", 200),
    "denied": ("Denied. The terminal will not be logged in.", 200),
    "bad_credentials": ("Wrong email or password.", 401),
    "locked": ("Too many failed attempts; start `dexto login` again.", 403),
    "unknown_code": ("Unknown or expired code; check the terminal.", 404),
}


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _sign(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_csrf_token(key: str, now: float | None = None) -> str:
    body = f"{int(now if now is not None else time.time())}.{secrets.token_urlsafe(16)}"
    return f"{body}.{_sign(key, body)}"


def csrf_valid(key: str, form_token: str, cookie_token: str, now: float | None = None) -> bool:
    if not form_token or not hmac.compare_digest(form_token.encode(), cookie_token.encode()):
        return False
    ts, _, rest = form_token.partition(".")
    nonce, _, mac = rest.partition(".")
    if not ts.isdigit() or not nonce or not hmac.compare_digest(mac, _sign(key, f"{ts}.{nonce}")):
        return False
    age = (now if now is not None else time.time()) - int(ts)
    return 0 <= age <= CSRF_TTL_S


def known_token(key: str, account_subject: str) -> str:
    """The "this browser signed in to this account" cookie value."""
    return _sign(key, "known|" + account_subject)


def known_valid(key: str, account_subject: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(token, known_token(key, account_subject))


def _own_origin(request: Request, st: GatewayState) -> str:
    if st.settings.public_url:
        parts = urlsplit(st.settings.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def _same_origin(request: Request, st: GatewayState) -> bool:
    """The post's Origin (else its Referer's origin) is ours; true when a client sends neither."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == _own_origin(request, st)


def _set_cookie(
    resp: Response, request: Request, st: GatewayState, name: str, value: str, max_age: int
) -> None:
    """A cookie for the device page only: HttpOnly, SameSite=Strict, Secure behind HTTPS."""
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/device",
        httponly=True,
        samesite="strict",
        secure=_own_origin(request, st).startswith("https:"),
    )


def _json_or_form(raw: bytes, ctype: str) -> dict[str, Any]:
    """A JSON object or a UTF-8 form (no Content-Type = form, as RFC 8628 clients send)."""
    if json_content_type(ctype):
        return json_object_or_error(raw)
    if ctype and ctype.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise HttpError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send application/json or application/x-www-form-urlencoded.",
            fix='Send {"device_code": "…"} as JSON.',
        )
    try:
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
    except UnicodeDecodeError:
        raise HttpError(400, "INVALID_REQUEST", "The body is not valid UTF-8.") from None


def make_device_routes(get_state: Callable[[], GatewayState]) -> list[Route]:
    cache: dict[str, str] = {}

    async def csrf_key(st: GatewayState) -> str:
        if "csrf" not in cache:
            cache["csrf"] = await st.runner.run(throttle.secret, "device_csrf")
        return cache["csrf"]

    async def device_code(request: Request) -> Response:
        st = get_state()
        raw = await read_limited(request, _FORM_LIMIT)
        if raw.strip():
            _json_or_form(raw, request.headers.get("content-type", ""))  # fields unused
        wait = await st.runner.run(
            throttle.issue_code, _client(request), st.settings.device_codes_per_minute
        )
        if wait:
            raise HttpError(
                429,
                "RATE_LIMITED",
                "Too many device codes requested from this address.",
                "rate_limit_error",
                fix=f"Wait {wait} s and run `dexto login` again.",
                headers={"Retry-After": str(wait)},
            )
        base = st.settings.public_url or str(request.base_url).rstrip("/")
        return Response(
            json.dumps(await st.runner.run(device.create_code, base)),
            media_type="application/json",
        )

    async def device_token(request: Request) -> Response:
        st = get_state()
        raw = await read_limited(request, _FORM_LIMIT)
        value = _json_or_form(raw, request.headers.get("content-type", "")).get("device_code")
        if not isinstance(value, str) or not value or len(value) > 200:
            raise HttpError(
                400,
                "INVALID_REQUEST",
                "'device_code' is required and must be a string.",
                fix="Send the device_code returned by POST /auth/device/code.",
            )
        status, result = await st.runner.run(device.consume, value)
        if status == "ok":
            return Response(json.dumps(result), media_type="application/json")
        raise HttpError(400, status, _TOKEN_MESSAGES[status], status.lower())

    def page(
        st: GatewayState, key: str, request: Request, user_code: str, text: str, status: int
    ) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE, "")
        if not csrf_valid(key, token, token, now=time.time() + 60):
            token = new_csrf_token(key)  # none yet, or about to expire: a fresh one
        resp = HTMLResponse(
            device.render_page(user_code, text, token), status, headers=_SECURE_HEADERS
        )
        _set_cookie(resp, request, st, CSRF_COOKIE, token, CSRF_TTL_S)
        return resp

    async def device_page(request: Request) -> Response:
        st = get_state()
        key = await csrf_key(st)
        if request.method == "GET":
            code = request.query_params.get("user_code", "")[:20]
            return page(st, key, request, code, "", 200)
        raw = await read_limited(request, _FORM_LIMIT)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise HttpError(
                415, "UNSUPPORTED_MEDIA_TYPE", "Submit the form as x-www-form-urlencoded."
            )
        try:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
        except UnicodeDecodeError:
            raise HttpError(400, "INVALID_REQUEST", "The form is not valid UTF-8.") from None
        user_code = form.get("user_code", "")[:20]
        if not _same_origin(request, st):
            return page(st, key, request, "", "Cross-site request refused.", 403)
        if not csrf_valid(key, form.get("csrf", ""), request.cookies.get(CSRF_COOKIE, "")):
            return page(st, key, request, user_code, "This page expired; please try again.", 403)
        email = form.get("email", "")[:320]
        acct, addr = throttle.account_subject(email), throttle.address_subject(_client(request))
        # A browser that signed in to this account before is exempt from the account's count
        # (an attacker cannot lock the holder out); the address count still applies.
        known = known_valid(key, acct, request.cookies.get(KNOWN_COOKIE, ""))
        subjects = [(addr, throttle.ADDRESS_FREE)]
        if not known:
            subjects.append((acct, throttle.ACCOUNT_FREE))
        wait = await st.runner.run(throttle.attempt, subjects, st.settings.login_backoff_s)
        if wait:
            resp = page(
                st,
                key,
                request,
                user_code,
                f"Too many failed sign-ins; try again in {wait} seconds.",
                429,
            )
            resp.headers["Retry-After"] = str(wait)
            return resp
        pending, account_id, pw_hash = await st.runner.run(device.lookup, user_code, email)
        ok = False
        if pending:
            # scrypt is slow on purpose: off the event loop and off the database threads.
            password = form.get("password", "")[:1000]
            ok = await asyncio.to_thread(verify_password, password, pw_hash)
            outcome = await st.runner.run(
                device.record,
                user_code,
                account_id if ok else None,
                deny=form.get("action") == "deny",
            )
        else:
            outcome = "unknown_code"
        text, status = _OUTCOMES[outcome]
        resp = page(st, key, request, user_code if status >= 400 else "", text, status)
        if ok and outcome in ("approved", "denied"):
            forgive = None if known else acct
            await st.runner.run(throttle.succeeded, forgive, addr, throttle.ADDRESS_FREE)
            _set_cookie(resp, request, st, KNOWN_COOKIE, known_token(key, acct), KNOWN_TTL_S)
        return resp

    return [
        Route("/auth/device/code", device_code, methods=["POST"]),
        Route("/auth/device/token", device_token, methods=["POST"]),
        Route("/device", device_page, methods=["GET", "POST"]),
    ]
