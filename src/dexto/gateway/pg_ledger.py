"""The chat path's ledger steps on PostgreSQL, one statement (one round trip) each, async.

Same arguments, results and effects as :func:`ledger.admit`, :func:`ledger.settle`,
:func:`ledger.release` and :func:`ledger.progress_many`; each runs as one statement on an
autocommit :class:`psycopg.AsyncConnection`, so the statement is the transaction and the
account row lock (admit, settle) is held only while it runs. ``admit`` and ``settle`` call the
server-side functions of schema v4 (:mod:`migrations_ledger`), which commit without waiting for
the WAL flush; :mod:`pg_batch` then waits for :meth:`PgPool.barrier` for them.
Given a ``commit`` value, the batched steps (``admit_one``, ``settle_one``, ``step_many``) set
``synchronous_commit`` back to it after the function returned, so their transaction's commit
waits for the flush itself.
:func:`step_many` runs several settlements and admissions in one statement (schema v6's
``dexto_step_many``, :mod:`migrations_step`), their arguments sent as two JSON texts (one object
per item); :data:`BATCHED` lists what :mod:`pg_batch` needs for each batched step.
:func:`implementation` maps a :mod:`ledger` function and its keyword arguments to the async
version (the runner's dispatch); anything else runs the synchronous code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from dexto.gateway import ledger
from dexto.gateway.ledger import MAX_CHARGE_MICROS, AdmitResult, SettleResult, now_ms

__all__ = [
    "BATCHED",
    "OneFn",
    "Params",
    "admit",
    "admit_one",
    "admit_params",
    "implementation",
    "progress_many",
    "release",
    "settle",
    "settle_one",
    "settle_params",
    "step_many",
]

Params = tuple[Any, ...]  # one call's arguments of the v4 function, in its order

_ADMIT = (
    "SELECT o_status, o_account, o_key, o_balance, o_available FROM dexto_admit("
    "%s::text, %s::text, %s::bigint, %s::bigint, %s::bigint, %s::text, %s::integer)"
)
_SETTLE = (
    "SELECT o_charged, o_written_off, o_balance, o_duplicate FROM dexto_settle("
    "%s::text, %s::text, %s::bigint, %s::bigint, %s::text, %s::integer, %s::integer,"
    " %s::smallint, %s::text, %s::text, %s::text, %s::text, %s::bigint, %s::text, %s::text,"
    " %s::bigint)"
)
_STEP_MANY = (
    "SELECT o_i, o_status, o_account, o_key, o_balance, o_available, o_charged, o_written_off,"
    " o_duplicate FROM dexto_step_many(%s::json, %s::json)"
)
# The fields of schema v6's item types (the keys of each item's JSON object), in the order of
# the arguments of dexto_admit / dexto_settle (what admit_params / settle_params return).
_ADMIT_FIELDS = ("key_hash", "request_id", "hold", "now", "expires_at", "model", "prompt_tokens")
_SETTLE_FIELDS = (
    "request_id", "account", "cost", "overdraft", "model", "prompt_tokens", "completion_tokens",
    "estimated", "key_id", "session_id", "source", "client_version", "now", "reason",
    "settled_by", "expired_before",
)  # fmt: skip
_RELEASE = "DELETE FROM holds WHERE request_id = %s::text RETURNING amount_micros"
_PROGRESS = (
    "UPDATE holds h SET generation_id = COALESCE(v.generation_id, h.generation_id),"
    " completion_tokens = v.tokens, delivered = 1, expires_at = %s::bigint"
    " FROM unnest(%s::text[], %s::text[], %s::integer[]) AS v(request_id, generation_id, tokens)"
    " WHERE h.request_id = v.request_id RETURNING h.request_id"
)


# Prefixed to a function call's SELECT: after the function returned (and set
# ``synchronous_commit = off`` for its transaction), the select list sets it back to the given
# value, so the statement's own commit waits for the WAL flush; its first column is dropped.
_SYNC = "SELECT set_config('synchronous_commit', %s::text, true), "


def _synced(sql: str, params: tuple[Any, ...], commit: str | None) -> tuple[str, tuple[Any, ...]]:
    if commit is None:
        return sql, params
    return _SYNC + sql.removeprefix("SELECT "), (commit, *params)


async def _one(
    cur: Any, sql: str, params: tuple[Any, ...], commit: str | None = None
) -> tuple[Any, ...] | None:
    sql, params = _synced(sql, params, commit)
    await cur.execute(sql, params)
    row = await cur.fetchone()
    if row is None:
        return None
    return tuple(row) if commit is None else tuple(row)[1:]


def admit_params(
    key_hash: str,
    request_id: str,
    hold_micros: int,
    *,
    ttl_ms: int,
    now: int | None = None,
    model: str | None = None,
    prompt_tokens: int | None = None,
) -> Params:
    """The arguments of ``dexto_admit`` for one :func:`ledger.admit` call."""
    now = now_ms() if now is None else now
    return (key_hash, request_id, hold_micros, now, now + ttl_ms, model, prompt_tokens)


def _admit_result(row: tuple[Any, ...]) -> AdmitResult:
    status, account_id, key_id, balance, available = row
    return AdmitResult(status, account_id, key_id, int(balance), int(available))


async def admit_one(cur: Any, params: Params, commit: str | None = None) -> AdmitResult:
    """One admission (the arguments from :func:`admit_params`) in one statement; with
    ``commit``, its transaction commits under that ``synchronous_commit`` instead of ``off``."""
    row = await _one(cur, _ADMIT, params, commit)
    assert row is not None  # a function with OUT parameters returns one row
    return _admit_result(row)


async def admit(cur: Any, *args: Any, **kw: Any) -> AdmitResult:
    """:func:`ledger.admit` in one statement."""
    return await admit_one(cur, admit_params(*args, **kw))


def settle_params(
    request_id: str,
    account_id: str,
    cost_micros: int,
    *,
    overdraft_limit_micros: int,
    model: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    estimated: bool = False,
    key_id: str | None = None,
    session_id: str | None = None,
    source: str | None = None,
    client_version: str | None = None,
    now: int | None = None,
    estimate_reason: str | None = None,
    settled_by: str | None = None,
    expired_before: int | None = None,
) -> Params:
    """The arguments of ``dexto_settle`` for one :func:`ledger.settle` call."""
    now = now_ms() if now is None else now
    cost_micros = min(max(0, int(cost_micros)), MAX_CHARGE_MICROS)
    return (
        request_id,
        account_id,
        cost_micros,
        overdraft_limit_micros,
        model,
        prompt_tokens,
        completion_tokens,
        1 if estimated else 0,
        key_id,
        session_id,
        source,
        client_version,
        now,
        estimate_reason if estimated else None,
        settled_by,
        expired_before,
    )


def _settle_result(row: tuple[Any, ...], account_id: str) -> SettleResult | LookupError:
    charged, written_off, balance, duplicate = row
    if duplicate is None:
        return LookupError(f"no account {account_id!r}")
    return SettleResult(int(charged), int(written_off), int(balance), bool(duplicate))


async def settle_one(cur: Any, params: Params, commit: str | None = None) -> SettleResult:
    """One settlement (the arguments from :func:`settle_params`) in one statement; ``commit``
    as for :func:`admit_one`."""
    row = await _one(cur, _SETTLE, params, commit)
    assert row is not None
    result = _settle_result(row, params[1])
    if isinstance(result, LookupError):
        raise result
    return result


async def settle(cur: Any, *args: Any, **kw: Any) -> SettleResult:
    """:func:`ledger.settle` in one statement."""
    return await settle_one(cur, settle_params(*args, **kw))


async def step_many(
    cur: Any, settles: list[Params], admits: list[Params], commit: str | None = None
) -> tuple[list[SettleResult | Exception], list[AdmitResult | Exception]]:
    """Settlements (arguments from :func:`settle_params`), then admissions (from
    :func:`admit_params`), in one statement (schema v6's ``dexto_step_many``), as if made one
    after another in that order; one outcome per item, each kind in its given order (a
    :class:`LookupError` for a settlement's missing account). ``commit`` as for
    :func:`admit_one`."""
    params = (
        orjson.dumps([dict(zip(_SETTLE_FIELDS, p, strict=True)) for p in settles]).decode(),
        orjson.dumps([dict(zip(_ADMIT_FIELDS, p, strict=True)) for p in admits]).decode(),
    )
    sql, params = _synced(_STEP_MANY, params, commit)
    await cur.execute(sql, params)
    rows = [tuple(r) if commit is None else tuple(r)[1:] for r in await cur.fetchall()]
    rows.sort(key=lambda r: int(r[0]))
    if [int(r[0]) for r in rows] != list(range(1, len(settles) + len(admits) + 1)):
        raise RuntimeError("the batch function returned an unexpected set of rows")
    n = len(settles)
    settled: list[SettleResult | Exception] = [
        _settle_result((row[6], row[7], row[4], row[8]), item[1])
        for row, item in zip(rows[:n], settles, strict=True)
    ]
    admitted: list[AdmitResult | Exception] = [_admit_result(row[1:6]) for row in rows[n:]]
    return settled, admitted


async def release(cur: Any, request_id: str) -> bool:
    """:func:`ledger.release` in one statement."""
    return await _one(cur, _RELEASE, (request_id,)) is not None


async def progress_many(
    cur: Any, rows: list[tuple[str, str | None, int]], expires_at: int
) -> frozenset[str]:
    """:func:`ledger.progress_many` in one statement. A request id given twice ends as the
    sequential updates would leave it: the last token count, the last generation id given."""
    if not rows:
        return frozenset()
    merged: dict[str, tuple[str | None, int]] = {}
    for request_id, generation_id, tokens in rows:
        previous = merged.get(request_id)
        if generation_id is None and previous is not None:
            generation_id = previous[0]
        merged[request_id] = (generation_id, tokens)
    await cur.execute(
        _PROGRESS,
        (
            expires_at,
            list(merged),
            [g for g, _ in merged.values()],
            [t for _, t in merged.values()],
        ),
    )
    return frozenset(str(r[0]) for r in await cur.fetchall())


_ASYNC: dict[Callable[..., Any], tuple[Callable[..., Awaitable[Any]], frozenset[str]]] = {
    ledger.admit: (admit, frozenset({"ttl_ms", "now", "model", "prompt_tokens"})),
    ledger.settle: (
        settle,
        frozenset(
            {
                "overdraft_limit_micros",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "estimated",
                "key_id",
                "session_id",
                "source",
                "client_version",
                "now",
                "estimate_reason",
                "settled_by",
                "expired_before",
            }
        ),
    ),
    ledger.release: (release, frozenset()),
    ledger.progress_many: (progress_many, frozenset()),
}


OneFn = Callable[[Any, Params, str | None], Awaitable[Any]]
# The steps the runner batches (see :mod:`pg_batch`): how to build one call's arguments, the
# single-item statement, and whether it is a settlement (its place in :func:`step_many`).
BATCHED: dict[
    Callable[..., Awaitable[Any]],
    tuple[Callable[..., Params], OneFn, bool],
] = {
    admit: (admit_params, admit_one, False),
    settle: (settle_params, settle_one, True),
}


def implementation(
    fn: Callable[..., Any], kw: Mapping[str, Any]
) -> Callable[..., Awaitable[Any]] | None:
    """The async version of ``fn`` if there is one that takes these keyword arguments."""
    entry = _ASYNC.get(fn)
    if entry is None or not entry[1].issuperset(kw):
        return None
    return entry[0]
