"""A mistyped ``--db`` is refused instead of silently creating a new, empty database.

For a SQLite URL other than the default (``sqlite:///$DEXTO_HOME/gateway.db``):

- a missing *directory* is refused, unless ``dexto gateway migrate --create`` (which creates it);
- a missing *file* is created only by the commands whose job is to start a database —
  ``migrate``, ``accounts create`` and ``serve`` — and they say so on stderr; the others
  (``accounts list``, ``credits add``, ``keys …``, ``usage``) refuse, naming the path.

PostgreSQL URLs are not checked here (a missing database is a connection error already).
"""

from __future__ import annotations

import sys

from dexto.config.files import path_error
from dexto.errors import ConfigError

__all__ = ["check_db_target"]


def check_db_target(url: str, *, creates: bool, create_dirs: bool = False) -> None:
    """Raise ``ConfigError`` when ``url`` names a SQLite file this command must not create."""
    from dexto.gateway.db import Database
    from dexto.gateway.settings import default_db_url

    db = Database(url)
    if db.path is None or url == default_db_url():
        return
    path = db.path
    if path.exists():
        return
    if not path.parent.is_dir():
        if create_dirs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise path_error(path, exc) from None
        else:
            raise ConfigError(
                f"no such directory: {path.parent}",
                field="--db",
                fix="check the --db path for a typo; to start a new database "
                f"there, run `dexto gateway migrate --create --db {url}`",
            )
    if not creates:
        raise ConfigError(
            f"no gateway database at {path}",
            field="--db",
            fix="check the --db path for a typo; to start a new database, run "
            f"`dexto gateway migrate --db {url}`",
        )
    sys.stderr.write(f"creating a new gateway database at {path}\n")
