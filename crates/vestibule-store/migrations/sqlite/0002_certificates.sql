-- How the gateway logs in to each target: a per-session certificate (default)
-- or its static key (legacy hosts).
ALTER TABLE targets ADD COLUMN credential TEXT NOT NULL DEFAULT 'certificate'
    CHECK (credential IN ('certificate', 'static_key'));

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
