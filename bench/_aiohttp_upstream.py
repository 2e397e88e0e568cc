"""Benchmark-only: the gateway's upstream client API on top of aiohttp's connector.

Used by bench/upstream_client.py to measure the candidate library inside the real gateway
(``python bench/_aiohttp_upstream.py gateway serve …`` patches it in, then runs the CLI).
Not part of the product; needs ``pip install aiohttp``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from dexto.gateway.upstream_http import UpstreamConnectError, UpstreamError, UpstreamTimeout


class AiohttpResponse:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._r = resp
        self.status_code = resp.status
        self.headers = {k.lower(): v for k, v in resp.headers.items()}

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._r.content.iter_any():
                yield chunk
        except TimeoutError:
            raise UpstreamTimeout("the upstream did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(str(exc)) from None

    async def aread(self) -> bytes:
        return b"".join([c async for c in self.aiter_raw()])

    async def aclose(self) -> None:
        self._r.release()


class AiohttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        headers: dict[str, str],
        **_: Any,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=30),
                headers=self._headers,
                timeout=self._timeout,
                trust_env=True,
                auto_decompress=False,
            )
        return self._session

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> AiohttpResponse:
        try:
            resp = await self._s().request(
                method, f"{self._base}/{path.lstrip('/')}", data=body, headers=headers
            )
        except TimeoutError:
            raise UpstreamTimeout("the upstream did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(str(exc)) from None
        return AiohttpResponse(resp)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)


if __name__ == "__main__":
    import dexto.gateway.upstream as upstream_module
    from dexto.cli.main import main

    upstream_module.HttpClient = AiohttpClient  # type: ignore[misc,assignment]
    sys.exit(main(sys.argv[1:]))
