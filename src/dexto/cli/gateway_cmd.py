"""``dexto gateway …``: run and administer the Dexto gateway (SPEC §10, docs/gateway.md).

Admin commands work on the database directly (``--db URL``, default ``$DEXTO_GATEWAY_DB`` or
``sqlite:///$DEXTO_HOME/gateway.db``) and apply missing migrations first.
"""

from __future__ import annotations

import argparse
import atexit
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["register"]


def register(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run and administer the Dexto gateway")
    sub = parser.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda ns: (parser.print_help(), 2)[1])

    serve = sub.add_parser("serve", help="run the gateway HTTP service")
    _db(serve)
    serve.add_argument("--upstream", help="upstream base URL (default OpenRouter)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8787)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(handler=_serve)

    mig = sub.add_parser("migrate", help="create or upgrade the gateway database schema")
    _db(mig, json_flag=True)
    mig.add_argument(
        "--create",
        action="store_true",
        help="also create the SQLite file's directory if it does not exist",
    )
    mig.set_defaults(handler=_wrap(_migrate, creates=True))

    accounts = sub.add_parser("accounts", help="create or list accounts")
    acc = accounts.add_subparsers(dest="accounts_command", metavar="ACTION")
    accounts.set_defaults(handler=lambda ns: (accounts.print_help(), 2)[1])
    create = acc.add_parser("create", help="create an account and its first API key")
    _db(create, json_flag=True)
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the account password (for `dexto login`) from stdin",
    )
    create.add_argument("--credits", metavar="USD", help="initial credits in USD")
    create.set_defaults(handler=_wrap(_accounts_create, creates=True))
    lst = acc.add_parser("list", help="list accounts")
    _db(lst, json_flag=True)
    lst.set_defaults(handler=_wrap(_accounts_list))

    credits = sub.add_parser("credits", help="add credits to an account")
    cr = credits.add_subparsers(dest="credits_command", metavar="ACTION")
    credits.set_defaults(handler=lambda ns: (credits.print_help(), 2)[1])
    add = cr.add_parser("add", help="add USD credits to an account")
    _db(add, json_flag=True)
    add.add_argument("--account", required=True, metavar="ID")
    add.add_argument("--usd", required=True, metavar="AMOUNT")
    add.set_defaults(handler=_wrap(_credits_add))

    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    ks = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys.set_defaults(handler=lambda ns: (keys.print_help(), 2)[1])
    kc = ks.add_parser("create", help="create an API key (shown once)")
    _db(kc, json_flag=True)
    kc.add_argument("--account", required=True, metavar="ID")
    kc.add_argument("--name")
    kc.set_defaults(handler=_wrap(_keys_create))
    kl = ks.add_parser("list", help="list an account's keys (never the keys themselves)")
    _db(kl, json_flag=True)
    kl.add_argument("--account", required=True, metavar="ID")
    kl.set_defaults(handler=_wrap(_keys_list))
    kr = ks.add_parser("revoke", help="revoke an API key")
    _db(kr, json_flag=True)
    kr.add_argument("--key", "--id", dest="key", required=True, metavar="KEY_ID")
    kr.set_defaults(handler=_wrap(_keys_revoke))

    usage = sub.add_parser("usage", help="an account's balance, month-to-date and recent usage")
    _db(usage, json_flag=True)
    usage.add_argument("--account", required=True, metavar="ID")
    usage.set_defaults(handler=_wrap(_usage))

    from dexto.cli.gateway_reconcile_cmd import register_reconcile

    register_reconcile(sub)


def _db(p: argparse.ArgumentParser, *, json_flag: bool = False) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        help="sqlite:///path or postgresql://… "
        "(default $DEXTO_GATEWAY_DB or sqlite:///$DEXTO_HOME/gateway.db)",
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON")


def _wrap(
    fn: Callable[[argparse.Namespace, Any], Any], *, creates: bool = False
) -> Callable[[argparse.Namespace], int]:
    """``creates``: the command may start a new SQLite database (see ``cli._gateway_db``)."""

    def handler(ns: argparse.Namespace) -> int:
        from dexto.cli._gateway_db import check_db_target
        from dexto.cli._output import print_error, print_json
        from dexto.errors import DextoError
        from dexto.gateway.admin import open_db
        from dexto.gateway.migrations import migrate
        from dexto.gateway.settings import GatewaySettings

        as_json = bool(getattr(ns, "json", False))
        try:
            url = GatewaySettings.resolve({"db_url": ns.db}).db_url
            check_db_target(url, creates=creates, create_dirs=bool(getattr(ns, "create", False)))
            db, conn = open_db(url)
            try:
                applied = migrate(db)
                result = fn(ns, conn) if fn is not _migrate else {"applied": applied}
            finally:
                db.close_all()
        except DextoError as err:
            return print_error(err, as_json=as_json)
        if as_json:
            print_json(result)
        else:
            _print_human(result)
        return 0

    return handler


def _print_human(result: Any) -> None:
    from dexto.cli._output import render_table

    if isinstance(result, dict) and "apiKey" in result:
        acct = result.get("account") or {}
        if acct:
            print(f"account {acct.get('id')} <{acct.get('email')}>")
        print(f"API key (shown once, store it now): {result['apiKey']}")
    elif isinstance(result, list) and not result:
        print("(none)")
    elif isinstance(result, dict) and "recent" in result and "mtd" in result:
        _print_usage(result)
    elif isinstance(result, list) and all("prefix" in r and "active" in r for r in result):
        print(
            render_table(
                ["id", "prefix", "name", "created", "status"],
                [
                    [
                        k["id"],
                        k["prefix"],
                        k["name"],
                        k["createdAt"],
                        "active" if k["active"] else f"revoked {k['revokedAt']}",
                    ]
                    for k in result
                ],
            )
        )
    elif isinstance(result, list) and all("email" in r and "balanceUsd" in r for r in result):
        print(
            render_table(
                ["id", "email", "balance (USD)"],
                [[a["id"], a["email"], a["balanceUsd"]] for a in result],
            )
        )
    elif isinstance(result, list):
        for item in result:
            print("  ".join(f"{k}={'-' if v is None else v}" for k, v in item.items()))
    elif isinstance(result, dict):
        for k, v in result.items():
            if isinstance(v, list):
                v = ", ".join(str(i) for i in v) or "(none)"
            print(f"{k}: {'-' if v is None else v}")


def _print_usage(doc: dict[str, Any]) -> None:
    from dexto.cli._output import render_table

    acct, mtd = doc["account"], doc["mtd"]
    print(f"account     {acct['id']} <{acct['email']}>")
    print(f"balance     ${doc['balanceUsd']}")
    print(f"this month  ${mtd['costUsd']} in {mtd['requests']} requests")
    print("recent requests:")
    print(
        render_table(
            ["time (UTC)", "model", "cost (USD)", "prompt", "completion", "source", "request"],
            [
                [
                    r["ts"],
                    r["model"],
                    r["costUsd"],
                    r["promptTokens"],
                    r["completionTokens"],
                    r["source"],
                    r["requestId"],
                ]
                for r in doc["recent"]
            ],
            empty="  (none)",
        )
    )


def _iso_dates(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``createdAt`` / ``revokedAt`` (epoch milliseconds in the database) as ISO 8601 UTC."""
    from dexto.gateway.usage import iso_ms

    return [
        {
            **k,
            "createdAt": iso_ms(int(k["createdAt"])),
            "revokedAt": iso_ms(int(k["revokedAt"])) if k["revokedAt"] is not None else None,
        }
        for k in keys
    ]


def _migrate(ns: argparse.Namespace, conn: Any) -> Any:  # replaced by the applied list
    return None


def _accounts_create(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.errors import ConfigError
    from dexto.gateway import admin
    from dexto.gateway.money import parse_usd

    micros = parse_usd(ns.credits, field="--credits", allow_zero=True) if ns.credits else 0
    password = None
    if ns.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError(
                "no password on stdin",
                field="--password-stdin",
                fix='Pipe the password, e.g. `printf %s "$PW" | dexto gateway …`.',
            )
    return admin.create_account(conn, ns.email, password=password, credits_micros=micros)


def _accounts_list(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin

    return admin.list_accounts(conn)


def _credits_add(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin
    from dexto.gateway.money import parse_usd

    return admin.add_credits(conn, ns.account, parse_usd(ns.usd, field="--usd"))


def _keys_create(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin

    return admin.create_key(conn, ns.account, name=ns.name)


def _keys_list(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin

    return _iso_dates(admin.list_keys(conn, ns.account))


def _keys_revoke(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin

    return admin.revoke_key(conn, ns.key)


def _usage(ns: argparse.Namespace, conn: Any) -> Any:
    from dexto.gateway import admin

    return admin.usage(conn, ns.account)


def _serve(ns: argparse.Namespace) -> int:
    import math
    import os

    from dexto.cli._gateway_db import check_db_target
    from dexto.cli._listen import bind_listener, listen_url, run_uvicorn
    from dexto.cli._output import print_error
    from dexto.errors import DextoError
    from dexto.gateway.app import create_app
    from dexto.gateway.db import Database, redact_url
    from dexto.gateway.metrics import multiprocess_dir
    from dexto.gateway.migrations import migrate
    from dexto.gateway.settings import GatewaySettings
    from dexto.gateway.upstream_http import env_proxy

    flags = {
        "db_url": ns.db,
        "upstream_url": ns.upstream,
        "host": ns.host,
        "port": ns.port,
        "workers": ns.workers,
    }
    try:
        settings = GatewaySettings.resolve(flags)
        env_proxy(settings.upstream_url)  # a bad HTTPS_PROXY/HTTP_PROXY: refuse before starting
        sock = bind_listener(settings.host, settings.port)  # nothing is created if this fails
    except DextoError as err:
        return print_error(err, as_json=False)
    try:
        check_db_target(settings.db_url, creates=True)
        if settings.auto_migrate:
            migrate(Database(settings.db_url))
    except DextoError as err:
        sock.close()
        return print_error(err, as_json=False)
    port = sock.getsockname()[1]
    print(
        f"dexto gateway listening on {listen_url(settings.host, port)}  "
        f"(database {redact_url(settings.db_url)}, {settings.workers} worker"
        f"{'s' if settings.workers != 1 else ''})",
        flush=True,
    )
    common: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": max(1, math.ceil(settings.drain_s)),
        "http": "httptools",
        "server_header": False,
    }
    cleanup = multiprocess_dir(settings.workers)  # metrics summed across workers
    if cleanup is not None:
        atexit.register(cleanup)
    if settings.workers <= 1:
        return run_uvicorn(create_app(settings), sock, **common)
    # Workers are separate processes: hand them the resolved settings through the env.
    os.environ.update(settings.to_env())
    return run_uvicorn(
        "dexto.gateway.app:create_app_from_env",
        sock,
        factory=True,
        workers=settings.workers,
        **common,
    )
