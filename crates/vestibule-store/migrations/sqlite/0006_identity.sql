-- Second factors and break-glass tokens.

-- One TOTP secret per person. The secret is stored as base32 in the clear (the
-- gateway must compute codes from it); protect the database file accordingly.
-- last_step is the last 30-second step a code was accepted for: codes for that
-- step or earlier are refused, so a code works once.
CREATE TABLE user_mfa (
    user_name TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    last_step INTEGER
);

-- One-time emergency tokens; only a SHA-256 hash of the token is kept.
CREATE TABLE breakglass_tokens (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX breakglass_tokens_account ON breakglass_tokens(account);
