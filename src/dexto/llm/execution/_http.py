"""The only place execution touches the network: POST a built call, sync or async, whole or as
SSE. httpx, URL and HTTP-status failures are translated to dexto errors here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from dexto.errors import UpstreamError
from dexto.llm.execution._errors import http_error, invalid_url_error, transport_error
from dexto.llm.execution._sse import Event, aiter_sse, iter_sse
from dexto.llm.execution._target import HttpCall, Target

__all__ = ["aopen_stream", "apost_json", "open_stream", "post_json"]

Headers = Mapping[str, str]


def _encode(call: HttpCall) -> bytes:
    return json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode(target: Target, resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content)
    except ValueError:
        raise UpstreamError(
            f"{target.label} sent a response that is not JSON (HTTP {resp.status_code})",
            fix="retry the request",
        ) from None


def post_json(client: httpx.Client, target: Target, call: HttpCall) -> tuple[Any, Headers]:
    try:
        resp = client.post(call.url, headers=call.headers, content=_encode(call))
    except httpx.HTTPError as exc:
        raise transport_error(target, exc) from None
    except httpx.InvalidURL:
        raise invalid_url_error(target) from None
    if resp.status_code >= 400:
        raise http_error(target, resp.status_code, resp.content, resp.headers)
    return _decode(target, resp), resp.headers


async def apost_json(
    client: httpx.AsyncClient, target: Target, call: HttpCall
) -> tuple[Any, Headers]:
    try:
        resp = await client.post(call.url, headers=call.headers, content=_encode(call))
    except httpx.HTTPError as exc:
        raise transport_error(target, exc) from None
    except httpx.InvalidURL:
        raise invalid_url_error(target) from None
    if resp.status_code >= 400:
        raise http_error(target, resp.status_code, resp.content, resp.headers)
    return _decode(target, resp), resp.headers


@contextmanager
def open_stream(
    client: httpx.Client, target: Target, call: HttpCall
) -> Iterator[tuple[Headers, Iterator[Event]]]:
    """Yield (response headers, SSE events). Errors before the first event carry the status."""
    try:
        with client.stream("POST", call.url, headers=call.headers, content=_encode(call)) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise http_error(target, resp.status_code, resp.content, resp.headers)
            yield resp.headers, iter_sse(resp.iter_lines())
    except httpx.HTTPError as exc:
        raise transport_error(target, exc) from None
    except httpx.InvalidURL:
        raise invalid_url_error(target) from None


@asynccontextmanager
async def aopen_stream(
    client: httpx.AsyncClient, target: Target, call: HttpCall
) -> AsyncIterator[tuple[Headers, AsyncIterator[Event]]]:
    try:
        async with client.stream(
            "POST", call.url, headers=call.headers, content=_encode(call)
        ) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise http_error(target, resp.status_code, resp.content, resp.headers)
            yield resp.headers, aiter_sse(resp.aiter_lines())
    except httpx.HTTPError as exc:
        raise transport_error(target, exc) from None
    except httpx.InvalidURL:
        raise invalid_url_error(target) from None
