"""One data layer over SQLite (stdlib sqlite3, WAL) and PostgreSQL (psycopg 3).

SQL is written once with ``?`` placeholders; :class:`Conn` rewrites them for PostgreSQL.
Transactions are explicit: :meth:`Conn.write` takes the write lock up front (SQLite
``BEGIN IMMEDIATE``), so the read-check-write sequences in :mod:`ledger` are serialised per
database (SQLite) or per locked account row (PostgreSQL ``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dexto.errors import ConfigError

__all__ = ["Conn", "Database", "redact_url"]

Row = tuple[Any, ...]


def redact_url(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


class Conn:
    """A thin wrapper giving both drivers one API: ``execute``, ``one``, ``all``, ``write``."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self._sql_cache: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = sql.replace("%", "%%").replace("?", "%s")
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self._sql(sql), tuple(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    @contextmanager
    def write(self) -> Iterator[Conn]:
        """A transaction that will write: commit on success, roll back on any error."""
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.raw.rollback()
            raise
        else:
            self.raw.commit()

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A read-only unit: one consistent snapshot on both drivers."""
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN")
        try:
            yield self
        finally:
            self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


class Database:
    """Knows how to open connections for one URL (``sqlite:///path`` or ``postgresql://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:"):
            self.dialect = "sqlite"
            path = url[len("sqlite:") :]
            if path.startswith("//"):
                path = path[2:]
            path = unquote(path)
            if not path or path == "/":
                raise ConfigError(
                    f"database URL {url!r} names no file",
                    fix="Use sqlite:////absolute/path/gateway.db or sqlite:///relative.db.",
                )
            if path.startswith("/"):
                # sqlite:///abs and sqlite:////abs → "/abs"; sqlite:///./rel → "./rel"
                path = "/" + path.lstrip("/")
                if path.startswith(("/./", "/../")):
                    path = path[1:]
            self.path: Path | None = Path(path)
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgres"
            self.path = None
        else:
            raise ConfigError(
                f"unsupported database URL {redact_url(url)!r}",
                fix="Use sqlite:///path/to/gateway.db or postgresql://user@host:5432/dbname.",
            )
        self._lock = threading.Lock()
        self._opened: list[Conn] = []

    def connect(self) -> Conn:
        if self.dialect == "sqlite":
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA busy_timeout=30000")
            # isolation_level=None: we issue BEGIN ourselves; commit()/rollback() still work.
            conn = Conn(_SqliteRaw(raw), "sqlite")
        else:
            import psycopg

            try:
                raw_pg = psycopg.connect(self.url, autocommit=False, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise ConfigError(
                    f"cannot connect to PostgreSQL at {redact_url(self.url)}: "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                    fix="Check the --db URL and that the server is running.",
                ) from None
            conn = Conn(raw_pg, "postgres")
        with self._lock:
            self._opened.append(conn)
        return conn

    def forget(self, conn: Conn) -> None:
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - best effort on a broken connection
            pass

    def close_all(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class _SqliteRaw:
    """sqlite3 in autocommit mode; ``commit``/``rollback`` issue the statements explicitly."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._raw.execute(sql, params)

    def commit(self) -> None:
        if self._raw.in_transaction:
            self._raw.execute("COMMIT")

    def rollback(self) -> None:
        if self._raw.in_transaction:
            self._raw.execute("ROLLBACK")

    def close(self) -> None:
        self._raw.close()
