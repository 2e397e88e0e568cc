"""The upstream HTTP/1.1 client over TLS (a CA generated in the test with trustme) and through
real HTTP proxies (``CONNECT`` tunnels and absolute-form forwarding), on both event loops."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop
from _upstream_raw import OK, Upstream, client, current_task, fetch, keep_alive, shutdown

from dexto.errors import ConfigError
from dexto.gateway.upstream_http import UpstreamProxyError, UpstreamTLSError, env_proxy


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def _client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_tls_upstream(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            c = client(up.url("https"), ssl_context=_client_ctx(ca))
            assert await fetch(c) == (200, b"ok")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert up.connections == 1
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % up.port in up.requests[0]

    run(go())


def test_tls_untrusted_certificate(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            c = client(up.url("https"), ssl_context=ssl.create_default_context())
            with pytest.raises(UpstreamTLSError) as err:
                await fetch(c)
            assert err.value.kind == "tls" and c.open_connections == 0
            await c.aclose()

    run(go())


@dataclass
class Relay:
    """An HTTP proxy: ``CONNECT`` tunnels, absolute-form requests forwarded verbatim."""

    refuse: bool = False
    seen: list[bytes] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None
    tasks: dict[asyncio.Task[Any], asyncio.StreamWriter] = field(default_factory=dict)

    async def __aenter__(self) -> Relay:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await shutdown(self.server, self.tasks)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks[current_task()] = writer
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.seen.append(head)
            method, target = head.split(b" ")[:2]
            if self.refuse:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
            if method == b"CONNECT":
                host, port = target.rsplit(b":", 1)
                ur, uw = await asyncio.open_connection(host.decode(), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport = target.split(b"/")[2]
                host, port = hostport.rsplit(b":", 1)
                ur, uw = await asyncio.open_connection(host.decode(), int(port))
                uw.write(head)
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()


def test_https_proxy_tunnel_from_env(
    run: Callable[..., Any], ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with Relay() as relay, Upstream(keep_alive(OK), tls=_server_ctx(ca)) as up:
            monkeypatch.setenv("HTTPS_PROXY", f"http://u%40x:p%3Aw@127.0.0.1:{relay.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            c = client(up.url("https"), ssl_context=_client_ctx(ca), proxy="env")
            assert await fetch(c) == (200, b"ok")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert len(relay.seen) == 1
        assert relay.seen[0].startswith(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % up.port)
        # Basic base64("u@x:p:w")
        assert b"Proxy-Authorization: Basic dUB4OnA6dw==\r\n" in relay.seen[0]
        assert up.connections == 1 and len(up.requests) == 2

    run(go())


def test_http_proxy_absolute_form_and_no_proxy(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with Relay() as relay, Upstream(keep_alive(OK)) as up:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{relay.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            c = client(up.url(), proxy="env")
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
            target = b"POST http://127.0.0.1:%d/api/v1/chat/completions HTTP/1.1" % up.port
            assert relay.seen[0].startswith(target)
            monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
            c = client(up.url(), proxy="env")
            assert c.proxy is None
            assert await fetch(c) == (200, b"ok")
            await c.aclose()
        assert len(relay.seen) == 1 and len(up.requests) == 2

    run(go())


def test_proxy_refusing_connect(run: Callable[..., Any], ca: trustme.CA) -> None:
    async def go() -> None:
        async with Relay(refuse=True) as relay:
            c = client(
                "https://127.0.0.1:9/api/v1",
                ssl_context=_client_ctx(ca),
                proxy=f"http://127.0.0.1:{relay.port}",
            )
            with pytest.raises(UpstreamProxyError) as err:
                await fetch(c)
            assert err.value.kind == "proxy" and "407" in str(err.value)
            await c.aclose()

    run(go())


@pytest.mark.parametrize(
    "value", ["socks5://u:secret@127.0.0.1:1080", "http://:secret@", "https://h:1"]
)
def test_unusable_proxy_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ConfigError) as err:
        env_proxy("https://openrouter.ai/api/v1")
    assert err.value.field == "HTTPS_PROXY" and "secret" not in str(err.value)
    assert env_proxy("http://openrouter.ai/api/v1") is None  # HTTP_PROXY is not set
    monkeypatch.setenv("NO_PROXY", "openrouter.ai")
    assert env_proxy("https://openrouter.ai/api/v1") is None


def test_gateway_serve_refuses_an_unusable_proxy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env.update({"HTTPS_PROXY": "socks5://u:secret@127.0.0.1:1080", "NO_PROXY": ""})
    env["DEXTO_HOME"] = str(tmp_path / "home")
    argv = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve"]
    argv += ["--db", f"sqlite:///{tmp_path / 'gw.db'}", "--upstream", "https://127.0.0.1:9/api/v1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "HTTPS_PROXY" in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr + done.stdout
