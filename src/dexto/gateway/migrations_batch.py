"""Schema v5: batch versions of the chat path's ledger functions on PostgreSQL (registered in
:data:`dexto.gateway.migrations.MIGRATIONS`; nothing on SQLite). Workers of this version call
schema v6's ``dexto_step_many`` (:mod:`migrations_step`) instead; these stay for workers of the
previous version during a rolling upgrade.

``dexto_admit_many`` and ``dexto_settle_many`` take one array per argument of ``dexto_admit`` /
``dexto_settle`` (schema v4, :mod:`migrations_ledger`) and process the items in array order, in
one statement and so one transaction, with the single function's statements for each item: the
results (one row per item, ``o_i`` its 1-based position) and the rows written are those of the
same calls made one after another. Before the first item, every account the batch touches is
locked with one ``SELECT … ORDER BY id FOR UPDATE``: batches of two connections lock their common
accounts in the same order, so they wait for each other instead of deadlocking. (``admit_many``
finds the accounts through the keys before locking; an item whose account was not among them —
a key created meanwhile — locks its row when it runs, as the single function does.) Each item
still reads the account row and the sum of its holds with fresh statements after the lock
(``VOLATILE`` functions under READ COMMITTED), so it sees every earlier item of the batch and
every transaction committed before the lock was granted. The transaction commits with
``synchronous_commit = off``, set once per batch (the caller waits for the pool's barrier).
"""

from __future__ import annotations

__all__ = ["batch_functions"]

_ADMIT_MANY = """CREATE OR REPLACE FUNCTION dexto_admit_many(
    p_key_hashes text[], p_request_ids text[], p_holds bigint[], p_nows bigint[],
    p_expires bigint[], p_models text[], p_prompt_tokens integer[])
RETURNS TABLE(o_i integer, o_status text, o_account text, o_key text, o_balance bigint,
              o_available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM accounts a
     WHERE a.id IN (SELECT k.account_id FROM api_keys k
                     WHERE k.key_hash = ANY(p_key_hashes) AND k.revoked_at IS NULL)
     ORDER BY a.id FOR UPDATE OF a;
    FOR i IN 1 .. COALESCE(array_length(p_key_hashes, 1), 0) LOOP
        o_i := i;
        o_status := NULL;
        o_available := NULL;
        SELECT k.id, k.account_id, a.balance_micros INTO o_key, o_account, o_balance
          FROM api_keys k JOIN accounts a ON a.id = k.account_id
         WHERE k.key_hash = p_key_hashes[i] AND k.revoked_at IS NULL
           FOR UPDATE OF a;
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
         WHERE h.account_id = o_account AND h.expires_at > p_nows[i];
        o_available := o_balance - v_held;
        IF o_available < GREATEST(p_holds[i], 1) THEN
            o_status := 'insufficient';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO holds (request_id, account_id, amount_micros, created_at, expires_at, model,
                           key_id, prompt_tokens)
        VALUES (p_request_ids[i], o_account, p_holds[i], p_nows[i], p_expires[i], p_models[i],
                o_key, p_prompt_tokens[i]);
        o_status := 'ok';
        o_available := o_available - p_holds[i];
        RETURN NEXT;
    END LOOP;
END $$"""

# An item whose OUT values are all NULL (but o_i): its account does not exist.
_SETTLE_MANY = """CREATE OR REPLACE FUNCTION dexto_settle_many(
    p_request_ids text[], p_accounts text[], p_costs bigint[], p_overdrafts bigint[],
    p_models text[], p_prompt_tokens integer[], p_completion_tokens integer[],
    p_estimated smallint[], p_keys text[], p_sessions text[], p_sources text[],
    p_client_versions text[], p_nows bigint[], p_reasons text[], p_settled_by text[],
    p_expired_before bigint[])
RETURNS TABLE(o_i integer, o_charged bigint, o_written_off bigint, o_balance bigint,
              o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold bigint;
    v_debit bigint;
    v_id bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM accounts a WHERE a.id = ANY(p_accounts) ORDER BY a.id FOR UPDATE;
    FOR i IN 1 .. COALESCE(array_length(p_request_ids, 1), 0) LOOP
        o_i := i;
        o_charged := NULL;
        o_written_off := NULL;
        o_duplicate := NULL;
        v_hold := NULL;
        v_id := NULL;
        SELECT a.balance_micros INTO o_balance FROM accounts a WHERE a.id = p_accounts[i]
           FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        o_charged := 0;
        o_written_off := 0;
        o_duplicate := true;
        IF p_expired_before[i] IS NULL THEN
            DELETE FROM holds h WHERE h.request_id = p_request_ids[i]
            RETURNING h.amount_micros INTO v_hold;
        ELSE
            DELETE FROM holds h
             WHERE h.request_id = p_request_ids[i] AND h.expires_at <= p_expired_before[i]
            RETURNING h.amount_micros INTO v_hold;
            IF NOT FOUND THEN
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        v_debit := LEAST(p_costs[i], GREATEST(0, o_balance + p_overdrafts[i]));
        INSERT INTO ledger (request_id, account_id, kind, amount_micros, cost_micros,
                            written_off_micros, hold_micros, estimated, model, prompt_tokens,
                            completion_tokens, key_id, session_id, source, client_version,
                            created_at, estimate_reason, settled_by)
        VALUES (p_request_ids[i], p_accounts[i], 'charge', -v_debit, p_costs[i],
                p_costs[i] - v_debit, COALESCE(v_hold, 0), p_estimated[i], p_models[i],
                p_prompt_tokens[i], p_completion_tokens[i], p_keys[i], p_sessions[i],
                p_sources[i], p_client_versions[i], p_nows[i], p_reasons[i], p_settled_by[i])
        ON CONFLICT (request_id) DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF v_debit <> 0 THEN
            UPDATE accounts a SET balance_micros = a.balance_micros - v_debit
             WHERE a.id = p_accounts[i];
        END IF;
        o_charged := v_debit;
        o_written_off := p_costs[i] - v_debit;
        o_balance := o_balance - v_debit;
        o_duplicate := false;
        RETURN NEXT;
    END LOOP;
END $$"""


def batch_functions(dialect: str) -> list[str]:
    return [_ADMIT_MANY, _SETTLE_MANY] if dialect == "postgres" else []
