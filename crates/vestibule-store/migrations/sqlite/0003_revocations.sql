-- Certificates revoked before their end; people presenting them are refused.
CREATE TABLE revoked_certificates (
    serial     TEXT PRIMARY KEY NOT NULL,
    reason     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
);
