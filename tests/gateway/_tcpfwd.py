"""A TCP forwarder process: listens on given addresses, pipes each connection to a target.

    python tests/gateway/_tcpfwd.py --listen 10.1.2.1,10.1.2.5 --target 127.0.0.1:5432 ...

Every target gets one port, the same on every listen address; once listening, one JSON line
``{"127.0.0.1:5432": port, ...}`` is printed on stdout. Runs until SIGTERM/SIGKILL. Standard
library only (uvloop when installed). Used by the network-namespace tests and benchmark, whose
gateways reach the root namespace's loopback-only servers through it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


def _handler(
    host: str, port: int
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(host, port)
        except OSError:
            cw.close()
            return
        try:
            await asyncio.gather(_pipe(cr, uw), _pipe(ur, cw))
        finally:
            cw.close()
            uw.close()

    return handle


def _bind(addr: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    return sock


async def _serve(listen: list[str], targets: list[str]) -> None:
    ports: dict[str, int] = {}
    servers = []
    for target in targets:
        host, _, port_s = target.rpartition(":")
        first = _bind(listen[0], 0)
        port = int(first.getsockname()[1])
        socks = [first] + [_bind(addr, port) for addr in listen[1:]]
        for sock in socks:
            servers.append(await asyncio.start_server(_handler(host, int(port_s)), sock=sock))
        ports[target] = port
    print(json.dumps(ports), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="comma-separated addresses")
    ap.add_argument("--target", action="append", required=True, help="HOST:PORT (repeatable)")
    ns = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(ns.listen.split(","), ns.target))
    else:
        uvloop.run(_serve(ns.listen.split(","), ns.target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
