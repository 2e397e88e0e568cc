"""Interop fixtures: a real gateway (SQLite file) in front of the real fake upstream, on loopback.

``gw`` is shared by a module (plenty of credits); ``broke`` has no credits (402); ``limited``
is a fresh gateway whose rate limit is exhausted by one request (429).
"""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent / "gateway")]  # `_interop`, `_gwhelpers`

from _gwhelpers import Gateway, start_gateway  # noqa: E402
from _interop import MODEL  # noqa: E402

from dexto.devtools.fake_upstream import create_app as fake_app  # noqa: E402
from dexto.devtools.fake_upstream_server import ServerThread  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Third-party clients (LiteLLM, LangChain, SDK streams cut by a failing assertion) leave
    # sockets and event loops to the garbage collector, which may run during a later test. The
    # gateway's own leaks are caught by tests/gateway, which keeps this warning an error.
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(
                pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
            )


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with ServerThread(fake_app()) as srv:
        yield srv.url + "/api/v1"


@pytest.fixture(scope="module")
def gw(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    db = f"sqlite:///{tmp_path_factory.mktemp('gw') / 'gateway.db'}"
    with start_gateway(db, upstream, credits_micros=10_000_000) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def broke(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    db = f"sqlite:///{tmp_path_factory.mktemp('broke') / 'gateway.db'}"
    with start_gateway(db, upstream, credits_micros=0) as gateway:
        yield gateway


@pytest.fixture
def limited(upstream: str, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway whose single-token bucket is already empty for ``limited.key``."""
    import httpx

    db = f"sqlite:///{tmp_path / 'limited.db'}"
    with start_gateway(db, upstream, rate_limit_rps=0.001, rate_limit_burst=1) as gateway:
        with httpx.Client() as c:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
            first = c.post(gateway.v1 + "/chat/completions", json=body, headers=gateway.auth())
        assert first.status_code == 200
        yield gateway


@pytest.fixture(scope="module", autouse=True)
def _collect_client_garbage_quietly() -> Iterator[None]:
    """The third-party clients leave sockets and event loops to the garbage collector; collect
    them when each interop module ends, with their ResourceWarnings ignored, so that they are not
    reported at the end of the session (where no per-test warning filter applies)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(3):
            gc.collect()
