"""The Dexto account client: device-flow login, API-key verification and usage (SPEC §10, §12).

All endpoints live at the gateway root (``DEXTO_GATEWAY_URL``, normalised by
``dexto.config.endpoints.gateway_root``):

- ``POST {root}/auth/device/code`` → device code, user code, verification URL, poll interval;
- ``POST {root}/auth/device/token`` with ``{"device_code"}`` → 400 ``AUTHORIZATION_PENDING`` /
  ``SLOW_DOWN`` while waiting, ``ACCESS_DENIED`` / ``EXPIRED_TOKEN``, or 200 ``{"apiKey"}``;
- ``GET {root}/me/usage`` with ``Authorization: Bearer dxk_…`` → account, balance, month to date.

Keys and device codes are held in ``Secret`` and never appear in errors or logs. Network and
HTTP failures become ``UpstreamError`` / ``AuthFailedError`` with a fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dexto._secret import Secret, is_sendable
from dexto._url import redact_url
from dexto._version import __version__
from dexto.auth.credentials import check_sendable
from dexto.config.endpoints import gateway_root
from dexto.errors import AuthFailedError, ConfigError, UpstreamError
from dexto.llm.providers import Provider

__all__ = [
    "DeviceCode",
    "account_summary",
    "check_key_format",
    "fetch_usage",
    "poll_device_token",
    "resolve_root",
    "start_device_flow",
]

TIMEOUT_S = 15.0
_PENDING = {"authorization_pending", "pending"}
_SLOW_DOWN = {"slow_down"}


def resolve_root(env: Mapping[str, str]) -> str:
    """The gateway root URL from ``DEXTO_GATEWAY_URL`` (default https://api.dexto.ai)."""
    return gateway_root(env)


@dataclass(frozen=True)
class DeviceCode:
    device_code: Secret
    user_code: str
    verification_url: str
    interval: float
    expires_in: float
    verification_url_complete: str | None = None


def _first(body: Mapping[str, Any], *names: str) -> Any:
    return next((body[n] for n in names if body.get(n) not in (None, "")), None)


def _headers(key: Secret | None = None, source: str = "apiKey") -> dict[str, str]:
    h = {"X-Dexto-Source": "cli", "X-Dexto-Version": __version__, "Accept": "application/json"}
    if key is not None:
        check_sendable(key.reveal(), source)
        h["Authorization"] = f"Bearer {key.reveal()}"
    return h


def _unreachable(root: str, exc: Exception) -> UpstreamError:
    return UpstreamError(
        f"could not reach the Dexto gateway at {redact_url(root)} ({type(exc).__name__})",
        fix="check your network connection, or set DEXTO_GATEWAY_URL to the gateway's address",
    )


def _request(method: str, url: str, root: str, **kw: Any) -> httpx.Response:
    try:
        return httpx.request(method, url, timeout=TIMEOUT_S, **kw)
    except httpx.HTTPError as exc:
        raise _unreachable(root, exc) from None
    except httpx.InvalidURL:
        raise ConfigError(
            f"{redact_url(root)!r} is not a valid URL (bad host or port)",
            field="DEXTO_GATEWAY_URL",
            fix="set DEXTO_GATEWAY_URL to the gateway's address, e.g. https://api.dexto.ai, "
            "or unset it",
        ) from None


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_code(body: Mapping[str, Any]) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("code") or err.get("type") or "")
    return str(err or body.get("status") or "")


def _bad_response(root: str, resp: httpx.Response) -> UpstreamError:
    code = _error_code(_json(resp))
    return UpstreamError(
        f"the Dexto gateway at {redact_url(root)} answered HTTP {resp.status_code}"
        + (f" ({code})" if code else ""),
        fix="try again later, or check DEXTO_GATEWAY_URL",
        status=resp.status_code,
    )


def start_device_flow(root: str) -> DeviceCode:
    """Ask the gateway for a device code; the user approves ``user_code`` at the URL."""
    resp = _request("POST", f"{root}/auth/device/code", root, headers=_headers(), json={})
    body = _json(resp)
    device = _first(body, "deviceCode", "device_code")
    user = _first(body, "userCode", "user_code")
    if resp.status_code != 200 or not isinstance(device, str) or not isinstance(user, str):
        raise _bad_response(root, resp)
    url = (
        _first(body, "verificationUrl", "verification_url", "verificationUri", "verification_uri")
        or f"{redact_url(root)}/device"
    )
    complete = _first(
        body,
        "verificationUrlComplete",
        "verification_url_complete",
        "verificationUriComplete",
        "verification_uri_complete",
    )
    return DeviceCode(
        Secret(device),
        user,
        str(url),
        float(_first(body, "interval") or 5),
        float(_first(body, "expiresIn", "expires_in") or 900),
        str(complete) if complete else None,
    )


def poll_device_token(
    root: str,
    code: DeviceCode,
    *,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[], None] | None = None,
) -> Secret:
    """Poll until the code is approved and return the API key; raise when denied or expired."""
    deadline = time.monotonic() + (code.expires_in if timeout_s is None else timeout_s)
    interval = max(code.interval, 0.05)
    while True:
        resp = _request(
            "POST",
            f"{root}/auth/device/token",
            root,
            headers=_headers(),
            json={"device_code": code.device_code.reveal()},
        )
        body = _json(resp)
        key = _first(body, "apiKey", "api_key", "key")
        if resp.status_code == 200 and isinstance(key, str):
            return Secret(key)
        status = _error_code(body).lower()
        if status in _SLOW_DOWN:
            interval += 1.0
        elif status not in _PENDING:
            raise _poll_failure(root, resp, status)
        if time.monotonic() + interval > deadline:
            raise AuthFailedError(
                "the login code expired before it was approved",
                fix="run `dexto login` again and approve the code in time",
            )
        if on_wait is not None:
            on_wait()
        sleep(interval)


def _poll_failure(root: str, resp: httpx.Response, status: str) -> Exception:
    if "denied" in status:
        return AuthFailedError(
            "the login request was denied", fix="run `dexto login` again and approve the code"
        )
    if status == "invalid_grant":
        return AuthFailedError(
            "the login code is unknown or was already used", fix="run `dexto login` again"
        )
    if "expired" in status:
        return AuthFailedError(
            "the login code expired before it was approved",
            fix="run `dexto login` again and approve the code in time",
        )
    return _bad_response(root, resp)


def check_key_format(key: str, provider: Provider | None = None) -> str:
    """Reject obviously malformed keys before any request (no key text in the error).

    ``provider`` is whose key it is (None: the Dexto key); the fix describes that key's shape.
    """
    key = key.strip()
    if not key or len(key) > 512 or not is_sendable(key):
        if provider is None:
            shape = "the Dexto key exactly as shown (dxk_…)"
        else:
            shape = f"the {provider.name} API key exactly as the provider shows it"
            if provider.key_example:
                shape += f" (it begins {provider.key_example})"
        raise ConfigError(
            "the API key is empty, or contains spaces, control characters or non-ASCII "
            "characters (such as '…' from a shortened copy)",
            field="apiKey",
            fix=f"paste {shape}",
        )
    return key


def fetch_usage(root: str, key: Secret, source: str = "apiKey") -> dict[str, Any]:
    """``GET /me/usage`` with the key; 401/403 → ``AuthFailedError`` (the key was refused).

    ``source`` names where the key came from (e.g. ``env:DEXTO_API_KEY``) for a key that
    cannot be sent."""
    resp = _request("GET", f"{root}/me/usage", root, headers=_headers(key, source))
    if resp.status_code in (401, 403):
        code = _error_code(_json(resp)) or "INVALID_API_KEY"
        raise AuthFailedError(
            f"the Dexto gateway refused the key ({code})",
            fix="check the key, or run `dexto login` to get a new one",
        )
    body = _json(resp)
    if resp.status_code != 200 or not isinstance(body.get("account"), dict):
        raise _bad_response(root, resp)
    return body


def account_summary(usage: Mapping[str, Any]) -> dict[str, Any]:
    """The ``whoami`` / ``billing status`` object: ``{"email", "balanceUsd", "mtd"}``."""
    account = usage.get("account") or {}
    mtd = usage.get("mtd") if isinstance(usage.get("mtd"), dict) else {}
    return {"email": account.get("email"), "balanceUsd": usage.get("balanceUsd"), "mtd": mtd}
