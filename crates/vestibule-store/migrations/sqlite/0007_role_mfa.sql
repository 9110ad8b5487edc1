-- A role may require a second factor of those who hold it.
ALTER TABLE roles ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;
