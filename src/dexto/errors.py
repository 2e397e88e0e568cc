"""The one exception tree of dexto.

Every error a user can meet carries a stable ``code``, a one-sentence ``message`` and a ``fix``
(what to do about it). Third-party errors are translated into these at the boundary, once.

    DextoError                      (base; code DEXTO_ERROR)
    ├── ConfigError                 INVALID_CONFIG      invalid file or value (names file/field)
    │   ├── ProviderNotAllowedError PROVIDER_NOT_ALLOWED  `provider: dexto` in user input
    │   ├── UnknownProviderError    UNKNOWN_PROVIDER
    │   └── InvalidModelIdError     INVALID_MODEL_ID
    ├── NoCredentialsError          NO_CREDENTIALS      nothing can pay for the selection
    ├── ExecutionError              (base for request-time failures)
    │   ├── InsufficientCreditsError INSUFFICIENT_CREDITS  gateway 402, no own key to continue
    │   ├── AuthFailedError         AUTH_FAILED         a key was refused (401/403)
    │   └── UpstreamError           UPSTREAM_ERROR      provider or gateway failed
    └── MissingExtraError           MISSING_EXTRA       an optional dependency is not installed

``to_dict()`` gives the JSON error shape used by every surface:
``{"error": {"code": ..., "message": ..., "fix": ...}}``. Secrets never appear in any field.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthFailedError",
    "ConfigError",
    "DextoError",
    "ExecutionError",
    "InsufficientCreditsError",
    "InvalidModelIdError",
    "MissingExtraError",
    "NoCredentialsError",
    "ProviderNotAllowedError",
    "UnknownProviderError",
    "UpstreamError",
]


class DextoError(Exception):
    """Base class: a message that states the problem and a fix that states the remedy."""

    code: ClassVar[str] = "DEXTO_ERROR"

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "fix": self.fix}}


class ConfigError(DextoError):
    """Invalid user input: a config file, a preference, a CLI argument or an API body."""

    code = "INVALID_CONFIG"

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        file: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        where = ""
        if file:
            where = f"{file}"
            if line is not None:
                where += f":{line}"
            where += ": "
        if field:
            where += f"{field}: "
        super().__init__(where + message, fix=fix)
        self.file = file
        self.field = field
        self.line = line


class ProviderNotAllowedError(ConfigError):
    code = "PROVIDER_NOT_ALLOWED"


class UnknownProviderError(ConfigError):
    code = "UNKNOWN_PROVIDER"


class InvalidModelIdError(ConfigError):
    code = "INVALID_MODEL_ID"


class NoCredentialsError(DextoError):
    code = "NO_CREDENTIALS"


class ExecutionError(DextoError):
    """A request failed while running."""

    code = "EXECUTION_ERROR"


class InsufficientCreditsError(ExecutionError):
    """The gateway answered 402 and no own key could continue the request."""

    code = "INSUFFICIENT_CREDITS"

    def __init__(self, message: str, *, fix: str = "", balance_usd: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.balance_usd = balance_usd


class AuthFailedError(ExecutionError):
    code = "AUTH_FAILED"


class UpstreamError(ExecutionError):
    code = "UPSTREAM_ERROR"

    def __init__(self, message: str, *, fix: str = "", status: int | None = None) -> None:
        super().__init__(message, fix=fix)
        self.status = status


class MissingExtraError(DextoError):
    code = "MISSING_EXTRA"
