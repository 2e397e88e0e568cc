"""One data layer over SQLite (stdlib sqlite3, WAL) and PostgreSQL (psycopg 3).

SQL is written once with ``?`` placeholders; :class:`Conn` rewrites them for PostgreSQL.
Transactions are explicit: :meth:`Conn.write` takes the write lock up front (SQLite
``BEGIN IMMEDIATE``), so the read-check-write sequences in :mod:`ledger` are serialised per
database (SQLite) or per locked account row (PostgreSQL ``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dexto._url import redact_url
from dexto.errors import ConfigError, DextoError

__all__ = [
    "Conn",
    "Database",
    "DatabaseUnavailable",
    "WriteLockBusy",
    "describe",
    "is_unavailable",
    "make_private_dirs",
    "pg_connect_failed",
    "redact_url",
]

Row = tuple[Any, ...]


class DatabaseUnavailable(DextoError):
    """The database cannot be reached or used right now (a dependency failure, not a bug)."""

    code = "SERVICE_UNAVAILABLE"


def pg_connect_failed(url: str, exc: BaseException) -> DatabaseUnavailable:
    """The outage a failed PostgreSQL connect is reported as (the URL without its password;
    libpq's message without any piece of it — with a raw ``@`` in the password libpq takes the
    rest of it for the host name and quotes it)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    password = urlsplit(url).password or ""
    for piece in sorted({password, unquote(password), *password.split("@")}, key=len)[::-1]:
        if len(piece) >= 3:
            first = first.replace(piece, "***")
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {redact_url(url)}: {first}",
        fix="Check the --db URL (percent-encode @ : / % in the password as %40 %3A %2F %25)"
        " and that the server is running.",
    )


# SQLite result codes that mean "the database is not usable now" rather than "this query is wrong".
_SQLITE_OUTAGE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_PERM",
)
# PostgreSQL SQLSTATE classes: 08 connection exception, 53 insufficient resources,
# 57 operator intervention (e.g. admin shutdown, pg_terminate_backend).
_PG_OUTAGE_CLASSES = ("08", "53", "57")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable or unusable (not a query error)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name:
            return name.startswith(_SQLITE_OUTAGE)
        return isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        return state is None or state[:2] in _PG_OUTAGE_CLASSES
    return False


def describe(exc: BaseException) -> str:
    """A one-line cause for logs: the exception class and its first line (no URL, no secret)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


class WriteLockBusy(Exception):
    """A non-waiting SQLite connection found the in-process writer mutex taken (nothing ran)."""


class Conn:
    """A thin wrapper giving both drivers one API: ``execute``, ``one``, ``all``, ``write``."""

    def __init__(
        self,
        raw: Any,
        dialect: str,
        write_lock: threading.Lock | None = None,
        inode: tuple[int, int] | None = None,
        *,
        wait_for_lock: bool = True,
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        self._sql_cache: dict[str, str] = {}
        self._write_lock = write_lock
        self.inode = inode  # SQLite: (st_dev, st_ino) of the file this connection opened
        self.statements = 0  # statements that succeeded on this connection
        self.commits = 0  # write transactions committed on this connection
        # False: :meth:`write` raises :class:`WriteLockBusy` instead of waiting for the
        # in-process writer mutex (a connection used on the event loop must never block).
        self._wait_for_lock = wait_for_lock
        self._batch = False  # SQLite: inside a group-commit transaction (see begin_batch)
        self._writing = False  # inside a write() transaction (a nested write() is a savepoint)

    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = sql.replace("%", "%%").replace("?", "%s")
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.raw.execute(self._sql(sql), tuple(params))
        self.statements += 1
        return cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    @contextmanager
    def write(self) -> Iterator[Conn]:
        """A transaction that will write: commit on success, roll back on any error.

        Inside a group-commit transaction (:meth:`begin_batch`) or another :meth:`write` it is
        a ``SAVEPOINT`` instead: released on success, rolled back to on any error; the
        enclosing transaction commits it (or rolls it back) later, so several writes can be
        made one atomic unit."""
        if self._batch or self._writing:
            with self._savepoint():
                yield self
            return
        lock = self._write_lock
        if lock is not None:
            # Threads of one process queue here instead of polling SQLite's busy handler.
            if not lock.acquire(self._wait_for_lock):
                raise WriteLockBusy("another writer of this process holds the SQLite write lock")
        try:
            if self.dialect == "sqlite":
                self.raw.execute("BEGIN IMMEDIATE")
            self._writing = True
            try:
                yield self
            except BaseException:
                self.raw.rollback()
                raise
            else:
                self.raw.commit()
                self.commits += 1
        finally:
            self._writing = False
            if lock is not None:
                lock.release()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        raw = self.raw
        raw.execute("SAVEPOINT w")
        try:
            yield
        except BaseException:
            # SQLite may have rolled the whole transaction back; PostgreSQL's is only aborted
            if self.dialect != "sqlite" or raw.in_transaction:
                raw.execute("ROLLBACK TO w")
                raw.execute("RELEASE w")
            raise
        raw.execute("RELEASE w")

    def begin_batch(self) -> None:
        """SQLite: open one write transaction for several calls (group commit). Takes the
        in-process writer mutex and ``BEGIN IMMEDIATE`` as :meth:`write` does; until
        :meth:`end_batch`, :meth:`write` blocks are savepoints and :meth:`read` opens nothing.
        The caller commits with ``raw.commit()``."""
        lock = self._write_lock
        if lock is not None and not lock.acquire(self._wait_for_lock):
            raise WriteLockBusy("another writer of this process holds the SQLite write lock")
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._batch = True

    def end_batch(self) -> None:
        """Leave the group-commit transaction: roll back what was not committed, free the mutex."""
        self._batch = False
        try:
            self.raw.rollback()
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A read-only unit: one consistent snapshot on both drivers (SQLite: a deferred
        transaction; PostgreSQL: ``REPEATABLE READ``, begun with the first statement, when no
        transaction is open yet). Inside a batch or a :meth:`write` it reads in that
        transaction and ends nothing."""
        if self._batch or self._writing:
            yield self
            return
        snapshot = False
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN")
        else:
            import psycopg

            if self.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self.raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                snapshot = True
        try:
            yield self
        finally:
            try:
                self.raw.rollback()
            finally:
                if snapshot:
                    with suppress(Exception):  # a broken connection: dropped by its owner
                        self.raw.isolation_level = None  # write() keeps READ COMMITTED

    def end_transaction(self) -> None:
        """PostgreSQL: roll back a transaction a call left open (psycopg opens one with its first
        statement, so a bare ``one``/``all`` outside :meth:`read`/:meth:`write` would otherwise
        leave the connection idle in transaction, holding its snapshot and locks). No-op on
        SQLite, inside a batch, on a closed connection, or when no transaction is open."""
        if self.dialect != "postgres" or self._batch or getattr(self.raw, "closed", False):
            return
        import psycopg

        status = self.raw.info.transaction_status
        if status in (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR):
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
            _check_pg_url(url)
        else:
            raise ConfigError(
                f"unsupported database URL {redact_url(url)!r}",
                fix="Use sqlite:///path/to/gateway.db or postgresql://user@host:5432/dbname.",
            )
        self._lock = threading.Lock()
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._opened: list[Conn] = []

    def connect(self, *, create: bool = True, busy_timeout_s: float | None = None) -> Conn:
        """Open a connection. SQLite: ``create=False`` refuses to create a missing file;
        ``busy_timeout_s=0`` opens a connection that never waits for a lock: SQLite answers
        ``SQLITE_BUSY`` at once and :meth:`Conn.write` raises :class:`WriteLockBusy` instead of
        waiting for this process's other writers."""
        if self.dialect == "sqlite":
            conn = self._connect_sqlite(
                create, BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
            )
        else:
            import psycopg

            try:
                raw_pg = psycopg.connect(self.url, autocommit=False, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise pg_connect_failed(self.url, exc) from None
            conn = Conn(raw_pg, "postgres")
        with self._lock:
            self._opened.append(conn)
        return conn

    def _connect_sqlite(self, create: bool, busy_timeout_s: float) -> Conn:
        assert self.path is not None
        path = self.path
        if create:
            try:
                make_private_dirs(path.parent)
                # The file (and so the -wal/-shm SQLite derives from it) is private: 0600.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                from dexto.config.files import path_error

                raise path_error(path, exc) from None
        elif not path.exists():
            raise DatabaseUnavailable(
                f"the SQLite database {str(path)!r} does not exist",
                fix="Restore the file, or run `dexto gateway migrate --db URL` to create it.",
            )
        try:
            raw = sqlite3.connect(
                f"file:{_uri_path(path)}?mode=rw{'c' if create else ''}",
                uri=True,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(
                f"cannot open the SQLite database {str(path)!r}: {describe(exc)}",
                fix="Check that the file exists and is readable and writable by the gateway.",
            ) from None
        for suffix in ("", "-wal", "-shm"):
            _tighten(Path(f"{path}{suffix}"))
        st = os.stat(path)
        # isolation_level=None: we issue BEGIN ourselves; commit()/rollback() still work.
        return Conn(
            _SqliteRaw(raw),
            "sqlite",
            self._write_lock,
            (st.st_dev, st.st_ino),
            wait_for_lock=busy_timeout_s > 0,
        )

    def check_file(self, conn: Conn) -> None:
        """SQLite: refuse to use a connection whose file was moved, removed or replaced."""
        if self.path is None or conn.inode is None:
            return
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"the SQLite database {str(self.path)!r} is not reachable: {describe(exc)}",
                fix="Restore the database file (and its directory) at the configured path.",
            ) from None
        if (st.st_dev, st.st_ino) != conn.inode:
            raise DatabaseUnavailable(
                f"the SQLite database {str(self.path)!r} was replaced by another file",
                fix="Put the original file back, or restart the gateway to use the new one"
                " (stop it before replacing its database).",
            )

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


def _check_pg_url(url: str) -> None:
    """Refuse a PostgreSQL URL libpq cannot parse, without repeating libpq's message: it quotes
    the offending part, which may be the password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError(
            "the PostgreSQL database URL (--db, DEXTO_GATEWAY_DB) cannot be parsed; it is not"
            " shown because it may contain a password",
            fix="Percent-encode reserved characters in the user name and password"
            " (% as %25, @ as %40, : as %3A, / as %2F), or pass the password in PGPASSWORD.",
        ) from None


BUSY_TIMEOUT_S = 10.0  # a SQLite writer waits this long for the lock (on a database thread)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.absolute()), safe="/")


def make_private_dirs(directory: Path) -> None:
    """Create missing directories as 0700 (existing ones are left as they are)."""
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def _tighten(path: Path) -> None:
    """Make an existing database file 0600 if group or others can access it."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o600)
    except OSError:
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

    @property
    def total_changes(self) -> int:
        return self._raw.total_changes

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    def close(self) -> None:
        self._raw.close()
