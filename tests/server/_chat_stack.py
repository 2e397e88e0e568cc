"""The offline chat stack for the page's try-it box: fake OpenRouter upstream → the real Dexto
gateway (SQLite) → plus a fake Anthropic for the direct fallback. All on loopback threads.

The upstream reports a large ``usage.cost`` so the first answer spends the account's credits;
the next request is refused with 402 and the client falls back to the user's own key.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dexto.devtools.fake_direct import FakeDirect
from dexto.devtools.fake_direct import create_app as fake_direct_app
from dexto.devtools.fake_upstream import FakeOptions
from dexto.devtools.fake_upstream import create_app as fake_upstream_app
from dexto.devtools.fake_upstream_server import ServerThread

ANTHROPIC_KEY = "sk-ant-user-secret-f4k3"


def _gateway_helpers() -> Any:
    """``tests/gateway/_gwhelpers.py`` (the gateway tests' own start-up helper)."""
    path = Path(__file__).resolve().parents[1] / "gateway" / "_gwhelpers.py"
    if "_gwhelpers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_gwhelpers", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_gwhelpers"] = module
        spec.loader.exec_module(module)
    return sys.modules["_gwhelpers"]


@dataclass
class ChatStack:
    env: dict[str, str]
    direct: FakeDirect

    def direct_requests(self) -> list[dict[str, Any]]:
        return self.direct.requests


@contextmanager
def chat_stack(
    tmp: Path, *, credits_micros: int = 1_000_000, cost_usd: float = 5.0
) -> Iterator[ChatStack]:
    helpers = _gateway_helpers()
    upstream = ServerThread(fake_upstream_app(FakeOptions(cost=cost_usd, chunks=6))).start()
    direct_app = fake_direct_app("anthropic")
    direct = ServerThread(direct_app).start()
    try:
        with helpers.start_gateway(
            f"sqlite:///{tmp / 'gateway.db'}", upstream.url, credits_micros=credits_micros
        ) as gw:
            yield ChatStack(
                {
                    "DEXTO_API_KEY": gw.key,
                    "DEXTO_GATEWAY_URL": gw.url,
                    "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                    "ANTHROPIC_BASE_URL": direct.url + "/v1",
                },
                direct_app,
            )
    finally:
        direct.stop()
        upstream.stop()
