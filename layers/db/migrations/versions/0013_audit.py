"""audit: the append-only, hash-chained audit log, its head, its retention anchors, and the
SQL that appends to it and guards it

Each row stores ``hash = sha256(prev_hash || canonical(row))`` where ``prev_hash`` is the hash
of the row before it (32 zero bytes before the first row). ``audit_append`` computes both
under the row lock of ``audit_head``, so concurrent writers keep one gapless chain. Triggers
refuse every UPDATE and TRUNCATE, and a DELETE unless the same transaction recorded a
retention anchor (``audit_anchor``) at or past every removed row; the anchors themselves are
append-only. The canonical form here is frozen: layers.audit.chain computes the same in
Python to verify the chain, and a change to it is a new revision, not an edit of this one.

Revision ID: 0013_audit
Revises: 0012_key_scopes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_audit"
down_revision: str | Sequence[str] | None = "0012_key_scopes"

TABLES = """
CREATE TABLE audit_log (
    seq bigint PRIMARY KEY,
    at timestamptz NOT NULL,
    action text NOT NULL,
    actor text NOT NULL,
    role text NOT NULL,
    key_id bigint,
    method text,
    route text,
    path text,
    target jsonb,
    status smallint,
    client text,
    detail jsonb,
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX ix_audit_log_at ON audit_log (at);
CREATE INDEX ix_audit_log_actor ON audit_log (actor, seq);
CREATE INDEX ix_audit_log_action ON audit_log (action, seq);
CREATE INDEX ix_audit_log_path ON audit_log (path text_pattern_ops);
CREATE INDEX ix_audit_log_key_use ON audit_log (actor, seq) WHERE action = 'key.use';
COMMENT ON TABLE audit_log IS
    'Append-only audit trail, hash-chained in seq order (see layers.audit); '
    'rows are added only by audit_append and removed only by retention (audit_anchor)';

CREATE TABLE audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
COMMENT ON TABLE audit_head IS
    'The last seq and hash of the audit chain; its row lock serialises appends';

CREATE TABLE audit_anchor (
    seq bigint PRIMARY KEY,
    hash bytea NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid bigint NOT NULL
);
COMMENT ON TABLE audit_anchor IS
    'Retention anchors: the seq and hash of the last audit row each prune removed; '
    'verification of the chain starts after the newest one';
"""

CANONICAL = """
CREATE FUNCTION audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(char_length(v)::text || ':' || v, '~');

CREATE FUNCTION audit_canonical(
    seq bigint, at timestamptz, action text, actor text, role text, key_id bigint,
    method text, route text, path text, target jsonb, status integer, client text, detail jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN concat_ws('|',
    audit_field(seq::text),
    audit_field((extract(epoch FROM at) * 1000000)::bigint::text),
    audit_field(action), audit_field(actor), audit_field(role), audit_field(key_id::text),
    audit_field(method), audit_field(route), audit_field(path), audit_field(target::text),
    audit_field(status::text), audit_field(client), audit_field(detail::text));
"""

APPEND = """
CREATE FUNCTION audit_append(entries jsonb, only_if_written boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
    appended boolean := false;
    e record;
    t timestamptz;
    last_use timestamptz;
    row_hash bytea;
BEGIN
    IF only_if_written AND txid_current_if_assigned() IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT h.seq, h.hash INTO head_seq, head_hash FROM audit_head h FOR UPDATE;
    FOR e IN
        SELECT * FROM jsonb_to_recordset(entries) AS x(
            action text, actor text, role text, key_id bigint, method text, route text,
            path text, target jsonb, status integer, client text, detail jsonb)
    LOOP
        t := clock_timestamp();
        IF e.action = 'key.use' THEN
            SELECT a.at INTO last_use FROM audit_log a
            WHERE a.action = 'key.use' AND a.actor = e.actor
              AND a.key_id IS NOT DISTINCT FROM e.key_id
            ORDER BY a.seq DESC LIMIT 1;
            CONTINUE WHEN last_use >= date_trunc('hour', t, 'UTC');
        END IF;
        head_seq := head_seq + 1;
        row_hash := sha256(head_hash || convert_to(audit_canonical(
            head_seq, t, e.action, e.actor, e.role, e.key_id, e.method, e.route, e.path,
            e.target, e.status, e.client, e.detail), 'UTF8'));
        INSERT INTO audit_log (seq, at, action, actor, role, key_id, method, route, path,
                               target, status, client, detail, prev_hash, hash)
        VALUES (head_seq, t, e.action, e.actor, e.role, e.key_id, e.method, e.route, e.path,
                e.target, e.status, e.client, e.detail, head_hash, row_hash);
        head_hash := row_hash;
        appended := true;
    END LOOP;
    IF appended THEN
        UPDATE audit_head SET seq = head_seq, hash = head_hash;
        RETURN head_seq;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION audit_append(jsonb, boolean) IS
    'Append entries (a JSON array of objects) to the audit chain under the head lock; '
    'key.use entries only for the first use of a credential in a UTC hour; with '
    'only_if_written, nothing unless the transaction has written; the last seq appended';
"""

GUARDS = """
CREATE FUNCTION audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit rows leave only through retention (cityhex audit prune)';
END $$;

CREATE FUNCTION audit_check_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_removed bigint := (SELECT max(seq) FROM removed);
    anchored bigint := (SELECT max(seq) FROM audit_anchor WHERE txid = txid_current());
BEGIN
    IF last_removed IS NOT NULL AND (anchored IS NULL OR last_removed > anchored) THEN
        RAISE EXCEPTION 'audit_log is append-only: DELETE refused (row % is not behind a '
            'retention anchor of this transaction)', last_removed
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'audit rows leave only through retention (cityhex audit prune)';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION audit_check_anchor() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.txid := txid_current();
    IF NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'an audit anchor must name a stored row by its seq and hash'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.seq <= coalesce((SELECT max(seq) FROM audit_anchor), 0) THEN
        RAISE EXCEPTION 'an audit anchor must lie past the previous one'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_log_delete_behind_anchor AFTER DELETE ON audit_log
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION audit_check_delete();
CREATE TRIGGER audit_anchor_checked BEFORE INSERT ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_check_anchor();
CREATE TRIGGER audit_anchor_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

-- fire even with session_replication_role = replica
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_update;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_delete_behind_anchor;
ALTER TABLE audit_anchor ENABLE ALWAYS TRIGGER audit_anchor_checked;
ALTER TABLE audit_anchor ENABLE ALWAYS TRIGGER audit_anchor_no_change;

REVOKE ALL ON audit_log, audit_anchor, audit_head FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(CANONICAL)
    op.execute(APPEND)
    op.execute(GUARDS)


def downgrade() -> None:
    op.execute("DROP TABLE audit_log, audit_head, audit_anchor")
    op.execute(
        "DROP FUNCTION audit_append(jsonb, boolean), audit_canonical(bigint, timestamptz, "
        "text, text, text, bigint, text, text, text, jsonb, integer, text, jsonb), "
        "audit_field(text), audit_refuse(), audit_check_delete(), audit_check_anchor()"
    )
