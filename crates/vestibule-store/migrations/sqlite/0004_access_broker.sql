-- Locks: block a person, a target or everyone holding a role, until removed or expired.
CREATE TABLE locks (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'target', 'role')),
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    removed_at  INTEGER
);
CREATE INDEX locks_active ON locks (removed_at, expires_at);

-- Sessions the gateway runs, live and ended. Written at start and end, bytes
-- refreshed periodically (never per packet).
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    person            TEXT NOT NULL,
    target            TEXT NOT NULL,
    login             TEXT NOT NULL,
    kind              TEXT NOT NULL,
    via_jump          INTEGER NOT NULL DEFAULT 0,
    ticket            TEXT,
    grant_id          TEXT,
    source            TEXT,
    started_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    bytes_to_target   INTEGER NOT NULL DEFAULT 0,
    bytes_from_target INTEGER NOT NULL DEFAULT 0,
    exit_status       INTEGER,
    outcome           TEXT,
    kill_requested_at INTEGER,
    kill_reason       TEXT
);
CREATE INDEX sessions_live ON sessions (ended_at);

-- Just-in-time access requests and their approvals.
CREATE TABLE access_requests (
    id             TEXT PRIMARY KEY,
    person         TEXT NOT NULL,
    target         TEXT NOT NULL,
    login          TEXT NOT NULL,
    duration_secs  INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'cancelled')),
    approvals_needed INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    decided_at     INTEGER,
    decided_by     TEXT,
    deny_reason    TEXT,
    expires_at     INTEGER
);
CREATE INDEX access_requests_person ON access_requests (person, target, login, state);

CREATE TABLE request_approvals (
    request_id  TEXT NOT NULL REFERENCES access_requests (id),
    approver    TEXT NOT NULL,
    approved_at INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
