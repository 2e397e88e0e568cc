"""Real gateway processes (``dexto gateway serve``) for tests that need them: one on loopback,
hosts sharing a database and Redis, hosts in their own network namespaces."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from _gwhelpers import UPSTREAM_KEY, chat_body, wait_healthy

from dexto.devtools.fake_upstream_server import free_port

ADMIN_TOKEN = "adm-test-token-0123456789"


@dataclass
class GatewayProcess:
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out


@contextmanager
def serve(
    db_url: str, upstream_url: str, tmp_path: Path, args: Sequence[str] = (), **env_extra: str
) -> Iterator[GatewayProcess]:
    """``dexto gateway serve`` on a free port with ``args`` added, ready once /healthz answers;
    ``env_extra`` overrides the environment (e.g. ``DEXTO_GATEWAY_DB_POOL_SIZE``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_GATEWAY_")}
    env.update(
        {
            "DEXTO_GATEWAY_UPSTREAM_KEY": UPSTREAM_KEY,
            "DEXTO_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "DEXTO_GATEWAY_RATE_LIMIT_RPS": "0",
            "DEXTO_GATEWAY_DB_POOL_SIZE": "3",
            **env_extra,
        }
    )
    log_path = tmp_path / f"gw-{port}.log"
    log = log_path.open("wb")
    cmd = [sys.executable, "-m", "dexto.cli.main", "gateway", "serve", "--db", db_url]
    cmd += ["--upstream", upstream_url, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path=log_path)
        yield GatewayProcess(url, log_path, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


# --- Gateway hosts: one ``dexto gateway serve`` per host, sharing one database and Redis -------


def host_env(redis_url: str, prefix: str, **settings: str) -> dict[str, str]:
    """The environment of a gateway host: shared Redis (one key prefix), ``settings`` as
    ``DEXTO_GATEWAY_<NAME>`` variables, no inherited gateway variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_GATEWAY_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "DEXTO_GATEWAY_UPSTREAM_KEY": UPSTREAM_KEY,
            "DEXTO_GATEWAY_REDIS_URL": redis_url,
            "DEXTO_GATEWAY_REDIS_PREFIX": prefix,
            "DEXTO_GATEWAY_DB_POOL_SIZE": "2",
        }
    )
    env.update({f"DEXTO_GATEWAY_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def gateway_host(
    addr: str,
    db_url: str,
    upstream: str,
    env: dict[str, str],
    log: Path,
    *,
    prefix: tuple[str, ...] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A gateway bound to ``addr`` (its command run under ``prefix``, e.g. ``ip netns exec NS``),
    ready: (base URL, process). Stopped (SIGTERM) afterwards unless already dead."""
    port = free_port()
    argv = [*prefix, sys.executable, "-m", "dexto.cli.main", "gateway", "serve", "--db", db_url]
    argv += ["--upstream", upstream, "--host", addr, "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT)
        url = f"http://{addr}:{port}"
        try:
            wait_healthy(url, proc, log_path=log)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)


def bypassed(metrics_text: str) -> float:
    """Rate-limit checks a host skipped while Redis failed (its ``/metrics`` text)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("dexto_gateway_ratelimit_bypassed_total{")
    )


async def fire(urls: list[str], key: str, n: int) -> list[tuple[int, str]]:
    """``n`` concurrent chat requests spread round-robin over ``urls``: (status, request id)."""
    async with httpx.AsyncClient(timeout=60) as c:
        rs = await asyncio.gather(
            *(
                c.post(
                    urls[i % len(urls)] + "/v1/chat/completions",
                    json=chat_body(),
                    headers={"Authorization": f"Bearer {key}"},
                )
                for i in range(n)
            )
        )
    return [(r.status_code, r.headers.get("x-request-id", "")) for r in rs]


# --- Network namespaces: each host in its own, reaching the root namespace over a veth pair -----


@dataclass(frozen=True)
class NsHost:
    ns: str  # namespace name
    addr: str  # the host's address inside its namespace
    root_addr: str  # the root-namespace end of its veth pair

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns)


def netns_problem() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); not root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command not found"
    return None


def _ip(*args: str) -> None:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


def _free_subnet() -> str:
    """An unused ``10.A.B`` prefix (no address or route of this host in 10.A.B.0/24)."""
    used = (
        subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout
        + subprocess.run(["ip", "route"], capture_output=True, text=True, timeout=30).stdout
    )
    rng = random.SystemRandom()
    for _ in range(100):
        prefix = f"10.{rng.randrange(64, 250)}.{rng.randrange(1, 250)}"
        if prefix + "." not in used:
            return prefix
    raise RuntimeError("no unused 10.x.y.0/24 subnet found")


@contextmanager
def network_namespaces(n: int) -> Iterator[list[NsHost]]:
    """``n`` fresh network namespaces, each joined to the root namespace by a veth pair on its
    own /30 (root end ``.4i+1``, namespace end ``.4i+2``); namespaces and veths are deleted
    afterwards, also when setting up or the body fails."""
    tag = uuid.uuid4().hex[:6]
    subnet = _free_subnet()
    made_ns: list[str] = []
    made_links: list[str] = []
    hosts: list[NsHost] = []
    try:
        for i in range(n):
            ns, root_if, ns_if = f"dexto-{tag}-{i}", f"dx{tag}r{i}", f"dx{tag}n{i}"
            root_addr, addr = f"{subnet}.{4 * i + 1}", f"{subnet}.{4 * i + 2}"
            _ip("netns", "add", ns)
            made_ns.append(ns)
            _ip("link", "add", root_if, "type", "veth", "peer", "name", ns_if)
            made_links.append(root_if)
            _ip("link", "set", ns_if, "netns", ns)
            _ip("addr", "add", f"{root_addr}/30", "dev", root_if)
            _ip("link", "set", root_if, "up")
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", ns_if)
            _ip("-n", ns, "link", "set", ns_if, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts.append(NsHost(ns, addr, root_addr))
        yield hosts
    finally:
        for link in made_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        for ns in made_ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@dataclass(frozen=True)
class Forwarder:
    ports: dict[str, int]  # "host:port" target -> the port it is forwarded from
    pid: int


@contextmanager
def tcp_forwarder(listen: list[str], targets: list[str]) -> Iterator[Forwarder]:
    """A forwarder process (``_tcpfwd.py``) listening on ``listen`` for each ``HOST:PORT`` of
    ``targets``, on one port per target. Killed afterwards."""
    argv = [sys.executable, str(Path(__file__).with_name("_tcpfwd.py"))]
    argv += ["--listen", ",".join(listen)] + [a for t in targets for a in ("--target", t)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise RuntimeError(
                "forwarder failed: " + (proc.stderr.read() if proc.stderr else b"").decode()
            )
        yield Forwarder({str(k): int(v) for k, v in json.loads(line).items()}, proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def via(url: str, addr: str, ports: dict[str, int]) -> str:
    """``url`` with its ``host:port`` replaced by ``addr`` and the forwarder's port for it."""
    parts = urlsplit(url)
    target = f"{parts.hostname}:{parts.port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"{addr}:{ports[target]}"
    return urlunsplit(parts._replace(netloc=netloc))
