"""Schema v4: the chat path's ledger steps as PostgreSQL functions (registered in
:data:`dexto.gateway.migrations.MIGRATIONS`; nothing on SQLite).

``dexto_admit`` and ``dexto_settle`` do exactly what :func:`dexto.gateway.ledger.admit` and
:func:`dexto.gateway.ledger.settle` do on PostgreSQL, statement for statement, inside one
server-side call: called in autocommit mode, each is one statement and so one transaction, and
the account row lock is held from the ``SELECT … FOR UPDATE`` to that statement's commit. Each
sets ``synchronous_commit = off`` for its own transaction, so that commit does not wait for the
WAL flush (the caller waits for a later flush instead, see :meth:`PgPool.barrier`).
The functions are ``VOLATILE`` (the default), so under READ COMMITTED every statement in them
takes a fresh snapshot: the sum of holds read after the row lock sees every hold committed
before the lock was granted, as in :func:`ledger.admit`. :mod:`dexto.gateway.pg_ledger` calls
them.
"""

from __future__ import annotations

__all__ = ["ledger_functions"]

_ADMIT = """CREATE OR REPLACE FUNCTION dexto_admit(
    p_key_hash text, p_request_id text, p_hold bigint, p_now bigint, p_expires_at bigint,
    p_model text, p_prompt_tokens integer,
    OUT o_status text, OUT o_account text, OUT o_key text, OUT o_balance bigint,
    OUT o_available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT k.id, k.account_id, a.balance_micros INTO o_key, o_account, o_balance
      FROM api_keys k JOIN accounts a ON a.id = k.account_id
     WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
       FOR UPDATE OF a;
    IF NOT FOUND THEN
        o_status := 'invalid_key';
        o_account := '';
        o_key := '';
        o_balance := 0;
        o_available := 0;
        RETURN;
    END IF;
    SELECT COALESCE(SUM(h.amount_micros), 0) INTO v_held FROM holds h
     WHERE h.account_id = o_account AND h.expires_at > p_now;
    o_available := o_balance - v_held;
    IF o_available < GREATEST(p_hold, 1) THEN
        o_status := 'insufficient';
        RETURN;
    END IF;
    INSERT INTO holds (request_id, account_id, amount_micros, created_at, expires_at, model,
                       key_id, prompt_tokens)
    VALUES (p_request_id, o_account, p_hold, p_now, p_expires_at, p_model, o_key,
            p_prompt_tokens);
    o_status := 'ok';
    o_available := o_available - p_hold;
END $$"""

# All OUT values NULL: the account does not exist.
_SETTLE = """CREATE OR REPLACE FUNCTION dexto_settle(
    p_request_id text, p_account text, p_cost bigint, p_overdraft bigint, p_model text,
    p_prompt_tokens integer, p_completion_tokens integer, p_estimated smallint, p_key text,
    p_session text, p_source text, p_client_version text, p_now bigint, p_reason text,
    p_settled_by text, p_expired_before bigint,
    OUT o_charged bigint, OUT o_written_off bigint, OUT o_balance bigint,
    OUT o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold bigint;
    v_debit bigint;
    v_id bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT a.balance_micros INTO o_balance FROM accounts a WHERE a.id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    o_charged := 0;
    o_written_off := 0;
    o_duplicate := true;
    IF p_expired_before IS NULL THEN
        DELETE FROM holds h WHERE h.request_id = p_request_id RETURNING h.amount_micros
          INTO v_hold;
    ELSE
        DELETE FROM holds h
         WHERE h.request_id = p_request_id AND h.expires_at <= p_expired_before
        RETURNING h.amount_micros INTO v_hold;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    v_debit := LEAST(p_cost, GREATEST(0, o_balance + p_overdraft));
    INSERT INTO ledger (request_id, account_id, kind, amount_micros, cost_micros,
                        written_off_micros, hold_micros, estimated, model, prompt_tokens,
                        completion_tokens, key_id, session_id, source, client_version,
                        created_at, estimate_reason, settled_by)
    VALUES (p_request_id, p_account, 'charge', -v_debit, p_cost, p_cost - v_debit,
            COALESCE(v_hold, 0), p_estimated, p_model, p_prompt_tokens, p_completion_tokens,
            p_key, p_session, p_source, p_client_version, p_now, p_reason, p_settled_by)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN;
    END IF;
    IF v_debit <> 0 THEN
        UPDATE accounts a SET balance_micros = a.balance_micros - v_debit
         WHERE a.id = p_account;
    END IF;
    o_charged := v_debit;
    o_written_off := p_cost - v_debit;
    o_balance := o_balance - v_debit;
    o_duplicate := false;
END $$"""


def ledger_functions(dialect: str) -> list[str]:
    return [_ADMIT, _SETTLE] if dialect == "postgres" else []
