-- Audit events from processes other than the gateway (the admin CLI). The
-- gateway owns the audit chain; it moves these into it, oldest first, and
-- deletes them once they are durable there.
CREATE TABLE audit_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
