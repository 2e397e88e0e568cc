"""Gateway test fixtures: real servers on loopback, real SQLite files, real PostgreSQL/Redis.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) tests SKIP when the
service is unreachable, unless ``DEXTO_REQUIRE_SERVICES=1`` (CI), where they FAIL.
Each PostgreSQL test gets its own schema; each Redis test its own key prefix.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `import _gwhelpers`

from _gwhelpers import Gateway, start_gateway  # noqa: E402

from dexto.devtools.fake_upstream import FakeUpstream
from dexto.devtools.fake_upstream import create_app as fake_app
from dexto.devtools.fake_upstream_server import ServerThread
from dexto.gateway.db import Conn, Database
from dexto.gateway.migrations import migrate

# Read at import: the autouse isolated_env fixture removes DEXTO_* variables per test.
REQUIRE_SERVICES = os.environ.get("DEXTO_REQUIRE_SERVICES") == "1"
PG_BASE = os.environ.get("DEXTO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("DEXTO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_checked: dict[str, str | None] = {}


def _pg_problem() -> str | None:
    if "pg" not in _checked:
        try:
            import psycopg

            with psycopg.connect(PG_BASE, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _checked["pg"] = None
        except Exception as exc:  # noqa: BLE001
            _checked["pg"] = f"PostgreSQL at {PG_BASE} unreachable: {type(exc).__name__}: {exc}"
    return _checked["pg"]


def _redis_problem() -> str | None:
    if "redis" not in _checked:
        try:
            import redis

            client = redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
            _checked["redis"] = None
        except Exception as exc:  # noqa: BLE001
            _checked["redis"] = f"Redis at {REDIS_BASE} unreachable: {type(exc).__name__}: {exc}"
    return _checked["redis"]


def _need(problem: str | None) -> None:
    if problem is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{problem} (DEXTO_REQUIRE_SERVICES=1)")
    pytest.skip(problem)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    _need(_pg_problem())
    import psycopg

    schema = f"dexto_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_BASE else "?"
    yield f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def redis_url() -> Iterator[str]:
    _need(_redis_problem())
    yield REDIS_BASE


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"dexto-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    if _redis_problem() is None:
        import redis

        client = redis.Redis.from_url(REDIS_BASE)
        try:
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def conn(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Conn]:
    """A connection to a migrated database, once on SQLite and once on PostgreSQL."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    migrate(db)
    c = db.connect()
    yield c
    db.close_all()


@pytest.fixture
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    """A fresh fake upstream on a thread: (app, base URL ending in /api/v1)."""
    app = fake_app()
    with ServerThread(app) as srv:
        yield app, srv.url + "/api/v1"


@pytest.fixture
def gateway(sqlite_url: str, fake: tuple[FakeUpstream, str]) -> Iterator[Gateway]:
    """A running gateway on SQLite with one account holding $1.00 and its key."""
    with start_gateway(sqlite_url, fake[1], credits_micros=1_000_000, fake=fake[0]) as gw:
        yield gw
