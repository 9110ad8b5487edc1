-- The key each certificate certifies, so that a key offered alone can be
-- matched with the certificate it had (e.g. one that expired). Rows from before
-- this migration have none.
ALTER TABLE certificates ADD COLUMN key_fingerprint TEXT;
CREATE INDEX certificates_key_fingerprint ON certificates (key_fingerprint, valid_before);
