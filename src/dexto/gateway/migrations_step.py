"""Schema v6: one PostgreSQL function for a batch of settlements and admissions together
(registered in :data:`dexto.gateway.migrations.MIGRATIONS`; nothing on SQLite).

``dexto_step_many(p_settles, p_admits)`` takes each kind's items as one JSON array of objects
whose keys are the fields of the composite types ``dexto_settle_item`` and ``dexto_admit_item``
(the arguments of ``dexto_settle`` and ``dexto_admit``, schema v4, in their order). In one
statement, and so one transaction, it runs every settlement in array order, then every admission
in array order, each with the single function's statements: the results (one row per item,
``o_i`` its 1-based position, settlements first) and the rows written are those of the same calls
made one after another in that order. Before the first item every account the batch touches
(the settlements' accounts, the accounts of the admissions' valid keys) is locked with one
``SELECT … ORDER BY id FOR UPDATE``, so batches of two connections lock their common accounts in
the same order and wait for each other instead of deadlocking; an admission whose key was
created meanwhile locks its account when it runs, as the single function does. Each item reads
the account row and the sum of its holds with fresh statements after the lock (``VOLATILE``,
READ COMMITTED), so it sees every earlier item and every transaction committed before the lock
was granted. A settlement's row carries ``o_charged``, ``o_written_off``, ``o_balance`` and
``o_duplicate`` (all NULL: no such account) and a NULL ``o_status``; an admission's row carries
``o_status``, ``o_account``, ``o_key``, ``o_balance`` and ``o_available``. The transaction
commits with ``synchronous_commit = off`` (set once per batch). The v4 and v5 functions stay
for workers of the previous version during a rolling upgrade.
"""

from __future__ import annotations

__all__ = ["step_functions"]

_ADMIT_ITEM = """CREATE TYPE dexto_admit_item AS (
    key_hash text, request_id text, hold bigint, now bigint, expires_at bigint, model text,
    prompt_tokens integer)"""

_SETTLE_ITEM = """CREATE TYPE dexto_settle_item AS (
    request_id text, account text, cost bigint, overdraft bigint, model text,
    prompt_tokens integer, completion_tokens integer, estimated smallint, key_id text,
    session_id text, source text, client_version text, now bigint, reason text,
    settled_by text, expired_before bigint)"""

_STEP_MANY = """CREATE OR REPLACE FUNCTION dexto_step_many(p_settles json, p_admits json)
RETURNS TABLE(o_i integer, o_status text, o_account text, o_key text, o_balance bigint,
              o_available bigint, o_charged bigint, o_written_off bigint,
              o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_settles dexto_settle_item[];
    v_admits dexto_admit_item[];
    s dexto_settle_item;
    a dexto_admit_item;
    v_held bigint;
    v_hold bigint;
    v_debit bigint;
    v_id bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_settles := ARRAY(SELECT x FROM json_populate_recordset(NULL::dexto_settle_item, p_settles) x);
    v_admits := ARRAY(SELECT y FROM json_populate_recordset(NULL::dexto_admit_item, p_admits) y);
    PERFORM 1 FROM accounts acc
     WHERE acc.id IN (SELECT us.account FROM unnest(v_settles) us
                      UNION ALL
                      SELECT k.account_id FROM api_keys k
                       WHERE k.key_hash IN (SELECT ua.key_hash FROM unnest(v_admits) ua)
                         AND k.revoked_at IS NULL)
     ORDER BY acc.id FOR UPDATE OF acc;
    o_i := 0;
    FOREACH s IN ARRAY v_settles LOOP
        o_i := o_i + 1;
        o_charged := NULL;
        o_written_off := NULL;
        o_duplicate := NULL;
        v_hold := NULL;
        v_id := NULL;
        SELECT acc.balance_micros INTO o_balance FROM accounts acc WHERE acc.id = s.account
           FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        o_charged := 0;
        o_written_off := 0;
        o_duplicate := true;
        IF s.expired_before IS NULL THEN
            DELETE FROM holds h WHERE h.request_id = s.request_id
            RETURNING h.amount_micros INTO v_hold;
        ELSE
            DELETE FROM holds h
             WHERE h.request_id = s.request_id AND h.expires_at <= s.expired_before
            RETURNING h.amount_micros INTO v_hold;
            IF NOT FOUND THEN
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        v_debit := LEAST(s.cost, GREATEST(0, o_balance + s.overdraft));
        INSERT INTO ledger (request_id, account_id, kind, amount_micros, cost_micros,
                            written_off_micros, hold_micros, estimated, model, prompt_tokens,
                            completion_tokens, key_id, session_id, source, client_version,
                            created_at, estimate_reason, settled_by)
        VALUES (s.request_id, s.account, 'charge', -v_debit, s.cost, s.cost - v_debit,
                COALESCE(v_hold, 0), s.estimated, s.model, s.prompt_tokens,
                s.completion_tokens, s.key_id, s.session_id, s.source, s.client_version,
                s.now, s.reason, s.settled_by)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF v_debit <> 0 THEN
            UPDATE accounts acc SET balance_micros = acc.balance_micros - v_debit
             WHERE acc.id = s.account;
        END IF;
        o_charged := v_debit;
        o_written_off := s.cost - v_debit;
        o_balance := o_balance - v_debit;
        o_duplicate := false;
        RETURN NEXT;
    END LOOP;
    o_charged := NULL;
    o_written_off := NULL;
    o_duplicate := NULL;
    FOREACH a IN ARRAY v_admits LOOP
        o_i := o_i + 1;
        o_status := NULL;
        o_available := NULL;
        SELECT k.id, k.account_id, acc.balance_micros INTO o_key, o_account, o_balance
          FROM api_keys k JOIN accounts acc ON acc.id = k.account_id
         WHERE k.key_hash = a.key_hash AND k.revoked_at IS NULL
           FOR UPDATE OF acc;
        IF NOT FOUND THEN
            o_status := 'invalid_key';
            o_account := '';
            o_key := '';
            o_balance := 0;
            o_available := 0;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT COALESCE(SUM(h.amount_micros), 0) INTO v_held FROM holds h
         WHERE h.account_id = o_account AND h.expires_at > a.now;
        o_available := o_balance - v_held;
        IF o_available < GREATEST(a.hold, 1) THEN
            o_status := 'insufficient';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO holds (request_id, account_id, amount_micros, created_at, expires_at, model,
                           key_id, prompt_tokens)
        VALUES (a.request_id, o_account, a.hold, a.now, a.expires_at, a.model, o_key,
                a.prompt_tokens);
        o_status := 'ok';
        o_available := o_available - a.hold;
        RETURN NEXT;
    END LOOP;
END $$"""


def step_functions(dialect: str) -> list[str]:
    return [_ADMIT_ITEM, _SETTLE_ITEM, _STEP_MANY] if dialect == "postgres" else []
