-- The audit log: one row per write by a tenant's API key or an admin
-- command (docs/api.md, "Audit log"). Who: the tenant and the key, or the
-- admin CLI's operator; what: an action, its target and a small detail;
-- when; and from where: the request's client IP, or the CLI's host. Each
-- row is written in the transaction of the change it records.
--
-- Append-only, enforced here rather than trusted to the code: UPDATE,
-- DELETE and TRUNCATE are refused by triggers that also fire under
-- session_replication_role = replica (ENABLE ALWAYS), and no one but the
-- owner holds those privileges. The owner (or a superuser) can still drop
-- the triggers: run the services as a role that does not own the schema
-- where that matters (docs/operations.md).
--
-- No foreign key to tenants: the log must outlive what it talks about, and
-- a cascading delete would be refused anyway.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id   text NOT NULL,
    actor       text NOT NULL CHECK (actor IN ('api_key', 'admin')),
    key_id      text,      -- the API key that made the request (actor api_key)
    operator    text,      -- the admin CLI's OS user (actor admin)
    source      text NOT NULL,   -- client IP (api_key) or host (admin)
    action      text NOT NULL,   -- "batch.create", "dnc.remove", "credits.add", ...
    target_id   text,            -- what it acted on: a batch, key, number ...
    detail      jsonb NOT NULL DEFAULT '{}',
    CHECK (actor <> 'api_key' OR key_id IS NOT NULL),
    CHECK (actor <> 'admin' OR operator IS NOT NULL)
);

-- A tenant's rows, newest first (GET /v1/audit-logs, batchcall audit).
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_change;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
