"""Cloud providers behind optional extras: Bedrock through boto3 (``dexto[bedrock]``) and
Vertex AI credentials through google-auth (``dexto[vertex]``). Both are imported only when used;
a missing extra is a ``MissingExtraError`` naming the ``pip install`` that fixes it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from dexto._secret import Secret
from dexto._url import host_and_port_ok, redact_urls_in
from dexto.errors import (
    AuthFailedError,
    ConfigError,
    ExecutionError,
    MissingExtraError,
    UpstreamError,
)
from dexto.llm.execution._errors import invalid_url_error, transport_error
from dexto.llm.execution._sse import Event
from dexto.llm.execution._target import HttpCall, Target

__all__ = ["BedrockTransport", "VertexAuth"]

Headers = Mapping[str, str]
log = logging.getLogger("dexto.llm.cloud")
_AUTH_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "NoCredentialsError",
}
_NETWORK_ERRORS = {"ConnectionError", "HTTPClientError"}  # botocore's bases for network failures
_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _missing(what: str, extra: str, package: str) -> MissingExtraError:
    return MissingExtraError(
        f"{what} needs the optional package {package}, which is not installed",
        fix=f"pip install 'dexto[{extra}]'",
    )


def _region(env: Mapping[str, str]) -> str | None:
    return (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None


class BedrockTransport:
    """A lazily created ``bedrock-runtime`` client; errors become dexto errors."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._client: Any = None

    def client(self, target: Target) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise _missing("Amazon Bedrock", "bedrock", "boto3") from None
            kwargs: dict[str, Any] = {"region_name": _region(self._env)}
            if target.base_url and not host_and_port_ok(target.base_url):
                raise invalid_url_error(target)
            if target.base_url:
                kwargs["endpoint_url"] = target.base_url
            if self._env.get("AWS_ACCESS_KEY_ID") and self._env.get("AWS_SECRET_ACCESS_KEY"):
                kwargs.update(
                    aws_access_key_id=self._env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=self._env["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=self._env.get("AWS_SESSION_TOKEN") or None,
                )
            self._client = boto3.client("bedrock-runtime", **kwargs)
        return self._client

    def post(self, target: Target, call: HttpCall) -> tuple[Any, Headers]:
        try:
            return self.client(target).converse(**call.body), {}
        except (MissingExtraError, ConfigError):
            raise
        except Exception as exc:  # botocore's errors are not importable without the extra
            raise _boto_error(target, exc) from None

    @contextmanager
    def open_stream(
        self, target: Target, call: HttpCall
    ) -> Iterator[tuple[Headers, Iterator[Event]]]:
        try:
            resp = self.client(target).converse_stream(**call.body)
        except (MissingExtraError, ConfigError):
            raise
        except Exception as exc:
            raise _boto_error(target, exc) from None
        yield {}, _events(target, resp)


def _events(target: Target, resp: Any) -> Iterator[Event]:
    try:
        for ev in resp["stream"]:
            yield "bedrock", json.dumps(ev, default=str)
    except Exception as exc:
        raise _boto_error(target, exc) from None


def _network_error(exc: Exception) -> bool:
    """Whether ``exc`` is one of botocore's connection or HTTP client errors."""
    return any(
        c.__module__.startswith("botocore") and c.__name__ in _NETWORK_ERRORS
        for c in type(exc).__mro__
    )


def _boto_error(target: Target, exc: Exception) -> ExecutionError:
    log.warning(
        "%s call failed: %s: %s", target.label, type(exc).__name__, redact_urls_in(str(exc))
    )
    if _network_error(exc):
        return transport_error(target, exc)
    response = getattr(exc, "response", None) or {}
    code = (response.get("Error") or {}).get("Code") or type(exc).__name__
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code in _AUTH_CODES or status in (401, 403):
        return AuthFailedError(
            f"{target.label} refused the credential ({code})",
            fix=f"check {target.credential_source} and the model access "
            "granted to it in the Bedrock console",
        )
    return UpstreamError(
        f"{target.label} failed ({code})",
        status=status,
        fix="check the model ID and region, then retry",
    )


class VertexAuth:
    """Application-default credentials → a bearer token; the endpoint from project + location."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._creds: Any = None

    def prepare(self, target: Target) -> Target:
        token = self._token()
        base = target.base_url or self._base_url()
        return replace(target, base_url=base, secret=Secret(token))

    def _base_url(self) -> str:
        project = self._env.get("GOOGLE_VERTEX_PROJECT", "").strip()
        loc = self._env.get("GOOGLE_VERTEX_LOCATION", "").strip() or "us-central1"
        host = "aiplatform.googleapis.com"
        if loc != "global":
            host = f"{loc}-{host}"
        return f"https://{host}/v1/projects/{project}/locations/{loc}/publishers/google"

    def _token(self) -> str:
        try:
            import google.auth
        except ImportError:
            raise _missing("Google Vertex AI", "vertex", "google-auth") from None
        if self._creds is None:
            try:
                self._creds, _ = google.auth.default(scopes=[_SCOPE])
            except Exception as exc:
                log.warning(
                    "Google application default credentials: %s: %s",
                    type(exc).__name__,
                    redact_urls_in(str(exc)),
                )
                raise AuthFailedError(
                    f"no Google application default credentials ({type(exc).__name__})",
                    fix="run `gcloud auth application-default login` or set "
                    "GOOGLE_APPLICATION_CREDENTIALS",
                ) from None
        if not self._creds.valid:
            self._creds.refresh(_auth_request())
        return str(self._creds.token)


def _auth_request() -> Any:
    try:
        from google.auth.transport.requests import Request
    except ImportError:
        raise _missing("Google Vertex AI", "vertex", "google-auth[requests]") from None
    return Request()
