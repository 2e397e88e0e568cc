"""Start the real ``dexto serve`` in a subprocess on a free loopback port, for API/browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.gateway._gwhelpers import wait_healthy

DEXTO = str(Path(sys.executable).with_name("dexto"))
DEXTO_ONLY = {"DEXTO_API_KEY": "dxk_test_0123456789"}

AGENT_YAML = """\
# Demo agent — hand-written, comments must survive every edit.
name: demo-agent   # the agent's name
llm:
  # which model this agent talks to
  provider: anthropic   # semantic provider, never "dexto"
  model: claude-sonnet-4-5-20250929   # native ID
  routing:
    prefer: dexto  # credits first
systemPrompt: |
  You are helpful.
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[str]
    agent: Path
    home: Path
    token: str | None = None
    log: Path | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(path, **kw)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start(
    home: Path,
    agent: Path | None,
    env: dict[str, str] | None = None,
    *,
    token: str | None = None,
    args: tuple[str, ...] = ("--no-refresh",),
) -> Served:
    port = free_port()
    full = dict(os.environ)
    full["DEXTO_HOME"] = str(home)
    full.update(env or {})
    cmd = [DEXTO, "serve", "--port", str(port), *args]
    if agent is not None:
        cmd += ["--agent", str(agent)]
    if token:
        cmd += ["--token", token]
    log = home.parent / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=full, stdout=out, stderr=subprocess.STDOUT, text=True)
    agent = agent or home / "agents" / "default-agent" / "default-agent.yml"
    served = Served(f"http://127.0.0.1:{port}", proc, agent, home, token, log)
    _wait_ready(served)
    return served


def _wait_ready(served: Served, timeout: float = 20.0) -> None:
    """The page answers 200; a server that exited or did not start in time is stopped."""
    try:
        wait_healthy(served.url, served.proc, log_path=served.log, path="/", timeout=timeout)
    except BaseException:
        served.stop()
        raise


def error_code(resp: httpx.Response) -> str:
    """The typed error code of a response, after checking the error shape."""
    body = resp.json()
    assert set(body["error"]) == {"code", "message", "fix"}
    return str(body["error"]["code"])
