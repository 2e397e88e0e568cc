"""Fixtures for the local-state tests: the real CLI in a subprocess, and a real gateway process."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gateway._gwhelpers import wait_healthy

PYTHON = sys.executable
Run = Callable[..., subprocess.CompletedProcess[str]]
PASSWORD = "correct horse battery staple"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


@pytest.fixture
def dexto(isolated_env: Path) -> Run:
    """Run ``python -m dexto.cli.main ARGS`` with the test's DEXTO_HOME."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "dexto.cli.main", *args],
            env=cli_env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProc:
    url: str
    email: str
    password: str
    api_key: str
    db_url: str

    def approve(self, user_code: str, *, deny: bool = False) -> httpx.Response:
        """Approve a device code the way a person's browser submits the /device form."""
        with httpx.Client(timeout=30) as browser:  # keeps the page's CSRF cookie
            page = browser.get(f"{self.url}/device", params={"user_code": user_code})
            assert page.status_code == 200 and "<form" in page.text
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token is not None
            form = {
                "user_code": user_code,
                "email": self.email,
                "password": self.password,
                "action": "deny" if deny else "approve",
                "csrf": token.group(1),
            }
            return browser.post(f"{self.url}/device", data=form)


def _start(db_url: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "dexto.cli.main",
            "gateway",
            "serve",
            "--db",
            db_url,
            "--port",
            str(port),
            "--upstream",
            "http://127.0.0.1:9/v1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    """A real ``dexto gateway serve`` process on loopback with one funded account."""
    root = tmp_path_factory.mktemp("gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEXTO_")}
    env["DEXTO_HOME"] = str(root)
    db_url = f"sqlite:///{root / 'gw.db'}"
    email = "person@example.com"
    made = subprocess.run(
        [
            PYTHON,
            "-m",
            "dexto.cli.main",
            "gateway",
            "accounts",
            "create",
            "--db",
            db_url,
            "--email",
            email,
            "--password-stdin",
            "--credits",
            "1.00",
            "--json",
        ],
        env=env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if made.returncode != 0:
        pytest.fail(f"could not create the gateway account: {made.stderr[-500:]}")
    key = json.loads(made.stdout)["apiKey"]
    port = free_port()
    proc = _start(db_url, port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=30)
        yield GatewayProc(url, email, PASSWORD, key, db_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
