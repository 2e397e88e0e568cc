"""A local, offline Dexto stack as child processes: the fake OpenRouter upstream, a fake direct
provider, and a real gateway on SQLite — started on free loopback ports, cleaned up always.

Used by ``dexto demo`` and by the end-to-end tests. Every process it starts is tracked by its
own ``Popen`` handle and terminated by that handle (never by name); logs go to ``<home>/logs``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = ["Account", "LocalStack", "StackError", "free_port"]

UPSTREAM_KEY = "sk-or-fake-upstream-key-0000"  # the gateway's (fake) OpenRouter key


class StackError(RuntimeError):
    """A stack process failed to start or an admin command failed (message names the log)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    api_key: str


@dataclass
class LocalStack:
    """``with LocalStack(home) as stack:`` → ``stack.gateway_url``, ``stack.direct_url[...]``."""

    home: Path
    direct: Sequence[str] = ("anthropic",)  # fake direct providers to start
    python: str = sys.executable
    gateway_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.home / 'gateway.db'}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['upstream']}"

    def direct_url(self, kind: str) -> str:
        """The base URL to give ``<KIND>_BASE_URL`` (with the API version path)."""
        path = {"anthropic": "/v1", "openai": "/v1", "google": "/v1beta", "cohere": "/v2"}[kind]
        return f"http://127.0.0.1:{self.ports[kind]}{path}"

    def env(self) -> dict[str, str]:
        """The environment of stack processes and admin commands (no user credentials)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("DEXTO_")
        }
        env["DEXTO_HOME"] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> LocalStack:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("upstream", ["-m", "dexto.cli.main", "dev", "fake-upstream"])
            for kind in self.direct:
                self._spawn(kind, ["-m", "dexto.devtools.fake_direct", kind])
            self.admin("migrate")
            gw_env = {**self.env(), "DEXTO_GATEWAY_UPSTREAM_KEY": UPSTREAM_KEY, **self.gateway_env}
            self._spawn(
                "gateway",
                [
                    "-m",
                    "dexto.cli.main",
                    "gateway",
                    "serve",
                    "--db",
                    self.db_url,
                    "--upstream",
                    self.upstream_url + "/api/v1",
                ],
                env=gw_env,
            )
            for name in self.procs:
                self._wait_ready(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        port = free_port()
        self.ports[name] = port
        log = open(self.home / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - owned by Popen
        try:
            self.procs[name] = subprocess.Popen(
                [self.python, *args, "--host", "127.0.0.1", "--port", str(port)],
                env=env or self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self, name: str, timeout: float = 30.0) -> None:
        path = (
            "/healthz"
            if name == "gateway"
            else ("/_fake/stats" if name == "upstream" else "/_fake/requests")
        )
        url = f"http://127.0.0.1:{self.ports[name]}{path}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise StackError(f"{name} exited during start-up; see {self.log(name)}")
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise StackError(f"{name} did not become ready in {timeout:.0f} s; see {self.log(name)}")

    def log(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def stop(self) -> None:
        """Terminate every process this stack started (by handle), then reap them."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- admin ------------------------------------------------------------------------------
    def admin(self, *args: str, stdin: str | None = None) -> Any:
        """Run ``dexto gateway ARGS --db URL`` and return its parsed ``--json`` output."""
        cmd = [self.python, "-m", "dexto.cli.main", "gateway", *args, "--db", self.db_url]
        if args[0] != "migrate":
            cmd.append("--json")
        done = subprocess.run(
            cmd, env=self.env(), input=stdin, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise StackError(
                f"`dexto gateway {' '.join(args)}` failed: "
                f"{(done.stdout + done.stderr).strip()[-500:]}"
            )
        return json.loads(done.stdout) if args[0] != "migrate" else None

    def create_account(self, email: str, credits_usd: str) -> Account:
        doc = self.admin("accounts", "create", "--email", email, "--credits", credits_usd)
        return Account(doc["account"]["id"], doc["account"]["email"], doc["apiKey"])

    def usage(self, account: Account) -> dict[str, Any]:
        doc: dict[str, Any] = self.admin("usage", "--account", account.id)
        return doc

    def fake_requests(self, kind: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"http://127.0.0.1:{self.ports[kind]}/_fake/requests", timeout=5)
        reqs: list[dict[str, Any]] = resp.json()["requests"]
        return reqs

    def upstream_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(self.upstream_url + "/_fake/stats", timeout=5).json()
        return stats
