-- People, their keys and password hashes.
CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE user_keys (
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    PRIMARY KEY (user_name, public_key)
);

-- Hosts reachable through the gateway. host_key holds the pinned key, or for
-- trust-on-first-use the key recorded at first contact (NULL until then).
CREATE TABLE targets (
    name          TEXT PRIMARY KEY NOT NULL,
    host          TEXT NOT NULL,
    port          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    default_login TEXT,
    labels        TEXT NOT NULL DEFAULT '[]',
    host_key_mode TEXT NOT NULL CHECK (host_key_mode IN ('pinned', 'trust_on_first_use')),
    host_key      TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE roles (
    name                  TEXT PRIMARY KEY NOT NULL,
    selector              TEXT NOT NULL,
    logins                TEXT NOT NULL,
    allow_port_forwarding INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);

CREATE TABLE role_grants (
    role_name TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (role_name, user_name)
);
