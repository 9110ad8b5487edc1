-- Targets gain how the gateway logs in (a per-session certificate by default,
-- or its static key for legacy hosts) and a third host-key mode: a host
-- certificate from trusted CAs. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt.
CREATE TABLE targets_v2 (
    name          TEXT PRIMARY KEY NOT NULL,
    host          TEXT NOT NULL,
    port          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    default_login TEXT,
    labels        TEXT NOT NULL DEFAULT '[]',
    host_key_mode TEXT NOT NULL CHECK (host_key_mode IN ('pinned', 'trust_on_first_use', 'host_ca')),
    -- The pinned key; the key recorded at first use (NULL until then); or the
    -- trusted host CA keys, one per line.
    host_key      TEXT,
    credential    TEXT NOT NULL DEFAULT 'certificate' CHECK (credential IN ('certificate', 'static_key')),
    created_at    INTEGER NOT NULL
);
INSERT INTO targets_v2 (name, host, port, default_login, labels, host_key_mode, host_key, credential, created_at)
    SELECT name, host, port, default_login, labels, host_key_mode, host_key, 'certificate', created_at FROM targets;
DROP TABLE targets;
ALTER TABLE targets_v2 RENAME TO targets;

-- Every certificate the gateway's CAs issue, for audit and metrics.
CREATE TABLE certificates (
    serial         TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    key_id         TEXT NOT NULL,
    principals     TEXT NOT NULL,
    valid_after    INTEGER NOT NULL,
    valid_before   INTEGER NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    issued_at      INTEGER NOT NULL
);
CREATE INDEX certificates_issued_at ON certificates (issued_at);
