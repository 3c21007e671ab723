"""The SQL function ``<schema>.publish(...)``: publish from any language, in SQL.

A producer that is not Python calls it inside its own transaction::

    SELECT catentio_webhooks.publish('ws_1', 'run.succeeded', '{"runId": "r_1"}'::jsonb);

It applies ``outbox.publish``'s rules (event type grammar and length, workspace id,
idempotency key and request id, the 256 KiB body limit), renders the same Forjio
envelope, makes an ``evt_`` id in the same time-sortable form as ``outbox.ids.new_id``
(48-bit milliseconds, then 80 random bits from ``gen_random_uuid()``, in lowercase
Crockford base32) and ``NOTIFY``s the poller, which hears it only if the transaction
commits. Bad input raises a ``22W0x`` SQLSTATE (``outbox.sqlstate``).

``SECURITY DEFINER`` with a pinned ``search_path``: a producer's role needs only
``USAGE`` on the schema and ``EXECUTE`` on the function, never a right on the tables.
PostgreSQL only; on SQLite this revision does nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:30:00.000000
"""

from __future__ import annotations

from alembic import op

from outbox.migrate import migrating_namespace

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SIGNATURE = "publish(text, text, jsonb, text, text)"

FUNCTION = r"""
CREATE OR REPLACE FUNCTION {schema}.publish(
    workspace_id text,
    type text,
    data jsonb,
    idempotency_key text DEFAULT NULL,
    request_id text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_created timestamptz := clock_timestamp();
    v_millis bigint := floor(extract(epoch FROM v_created) * 1000);
    v_random text := encode(uuid_send(gen_random_uuid()), 'hex');
    v_bits bit(130);
    v_id text := 'evt_';
    v_stamp text;
    v_body text;
    v_size integer;
    v_existing record;
    v_inserted text;
BEGIN
    IF publish.workspace_id IS NULL OR publish.workspace_id = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22W02',
            MESSAGE = 'workspace id must be a non-empty string';
    END IF;
    IF length(publish.workspace_id) > 64 THEN
        RAISE EXCEPTION USING ERRCODE = '22W02',
            MESSAGE = 'workspace id is longer than 64 characters';
    END IF;
    IF publish.workspace_id !~ '^[A-Za-z0-9][A-Za-z0-9_-]*$' THEN
        RAISE EXCEPTION USING ERRCODE = '22W02',
            MESSAGE = format('workspace id %L may hold only [A-Za-z0-9_-]', publish.workspace_id);
    END IF;

    IF publish.type IS NULL OR publish.type = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22W01',
            MESSAGE = 'event type must be a non-empty string';
    END IF;
    IF length(publish.type) > 128 THEN
        RAISE EXCEPTION USING ERRCODE = '22W01',
            MESSAGE = 'event type is longer than 128 characters';
    END IF;
    IF publish.type !~ '^[a-z0-9_]+(\.[a-z0-9_]+)*$' THEN
        RAISE EXCEPTION USING ERRCODE = '22W01',
            MESSAGE = format(
                'event type %L must be dot-separated segments of [a-z0-9_], such as %L',
                publish.type, 'run.succeeded');
    END IF;

    IF publish.data IS NULL OR jsonb_typeof(publish.data) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22W03',
            MESSAGE = format('data must be a JSON object, not %s',
                             coalesce(jsonb_typeof(publish.data), 'NULL'));
    END IF;

    IF publish.idempotency_key IS NOT NULL
       AND (publish.idempotency_key = '' OR length(publish.idempotency_key) > 255) THEN
        RAISE EXCEPTION USING ERRCODE = '22W05',
            MESSAGE = 'idempotency key must be a non-empty string of at most 255 chars';
    END IF;
    IF publish.request_id IS NOT NULL
       AND (publish.request_id = '' OR length(publish.request_id) > 255) THEN
        RAISE EXCEPTION USING ERRCODE = '22W05',
            MESSAGE = 'request id must be a non-empty string of at most 255 chars';
    END IF;

    -- 2 zero bits, 48 bits of milliseconds, 80 random bits (uuid bytes 0-5 and 10-13,
    -- which version 4 leaves wholly random): 26 base32 digits, as outbox.ids does.
    v_bits := B'00' || v_millis::bit(48)
        || ('x' || substr(v_random, 1, 12) || substr(v_random, 21, 8))::bit(80);
    FOR i IN 0..25 LOOP
        v_id := v_id || substr('0123456789abcdefghjkmnpqrstvwxyz',
                               substring(v_bits FROM i * 5 + 1 FOR 5)::integer + 1, 1);
    END LOOP;

    v_stamp := to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    v_body := '{{"data":{{"id":' || to_json(v_id)::text
        || ',"type":' || to_json(publish.type)::text
        || ',"workspaceId":' || to_json(publish.workspace_id)::text
        || ',"createdAt":"' || v_stamp || '"'
        || ',"data":' || publish.data::text
        || '}},"error":null,"meta":{{"requestId":'
        || coalesce(to_json(publish.request_id)::text, 'null')
        || ',"timestamp":"' || v_stamp || '"}}}}';
    v_size := octet_length(v_body);
    IF v_size > {max_body_bytes} THEN
        RAISE EXCEPTION USING ERRCODE = '22W04',
            MESSAGE = format('rendered body is %s bytes, over the %s limit',
                             v_size, {max_body_bytes});
    END IF;

    -- Same key, same event: the unique constraint decides, so two concurrent callers
    -- cannot both insert; the loser waits for the winner's commit and returns its id.
    INSERT INTO {schema}.events AS e
        (id, workspace_id, type, body, idempotency_key, request_id, created_at, dispatched_at)
    VALUES (v_id, publish.workspace_id, publish.type, v_body, publish.idempotency_key,
            publish.request_id, v_created, NULL)
    ON CONFLICT ON CONSTRAINT uq_events_idempotency DO NOTHING
    RETURNING e.id INTO v_inserted;

    IF v_inserted IS NULL THEN
        SELECT e.id, e.type INTO v_existing FROM {schema}.events AS e
        WHERE e.workspace_id = publish.workspace_id
          AND e.idempotency_key = publish.idempotency_key;
        IF v_existing.type <> publish.type THEN
            RAISE EXCEPTION USING ERRCODE = '22W06',
                MESSAGE = format(
                    'idempotency key %L was used for a %L event (%s) in this workspace',
                    publish.idempotency_key, v_existing.type, v_existing.id);
        END IF;
        RETURN v_existing.id;
    END IF;

    PERFORM pg_notify({channel}, '');
    RETURN v_inserted;
END;
$function$
"""

MAX_BODY_BYTES = 256 * 1024  # outbox.publish.DEFAULT_MAX_BODY_BYTES when this was written


def upgrade() -> None:
    ns = migrating_namespace()
    if ns.prefixed:
        return
    source = FUNCTION.format(
        schema=f'"{ns.schema}"', channel=f"'{ns.channel}'", max_body_bytes=MAX_BODY_BYTES
    )
    # Sent as it is: the body holds ':' and '%' that bind-parameter parsing would take.
    op.get_bind().exec_driver_sql(source, execution_options={"no_parameters": True})
    # Functions are executable by PUBLIC unless revoked; this one writes as its owner.
    op.execute(f'REVOKE ALL ON FUNCTION "{ns.schema}".{SIGNATURE} FROM PUBLIC')


def downgrade() -> None:
    ns = migrating_namespace()
    if ns.prefixed:
        return
    op.execute(f'DROP FUNCTION "{ns.schema}".{SIGNATURE}')
