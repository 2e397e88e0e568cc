"""A real gateway process (``dexto gateway serve``) for tests that need one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _gwhelpers import UPSTREAM_KEY, wait_healthy

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
