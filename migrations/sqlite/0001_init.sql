-- tokengate schema on SQLite. Times are INTEGER unix milliseconds (UTC), which order and
-- compare exactly; STRICT tables refuse values of the wrong type.

CREATE TABLE tokens (
    id                        TEXT PRIMARY KEY NOT NULL,
    user_name                 TEXT NOT NULL,
    description               TEXT NOT NULL,
    scope                     TEXT NOT NULL CHECK (scope IN ('read-only', 'read-write')),
    created_at                INTEGER NOT NULL,
    expires_at                INTEGER,
    -- CIDRs joined by commas; '' means any address.
    allowed_ips               TEXT NOT NULL DEFAULT '',
    rate_limit_requests       INTEGER,
    rate_limit_period_seconds INTEGER,
    last_used_at              INTEGER,
    last_used_ip              TEXT,
    revoked_at                INTEGER,
    -- argon2id PHC string; the secret itself is never stored.
    secret_hash               TEXT NOT NULL,
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_period_seconds IS NULL))
) STRICT;

CREATE INDEX tokens_by_created ON tokens (created_at DESC, id DESC);
CREATE INDEX tokens_by_user ON tokens (user_name, created_at DESC, id DESC);

CREATE TABLE credentials (
    user_name  TEXT PRIMARY KEY NOT NULL,
    -- The user's upstream credential, encrypted at rest.
    sealed     BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    user_name  TEXT,
    token_id   TEXT,
    client_ip  TEXT,
    method     TEXT,
    path       TEXT,
    request_id TEXT,
    node_id    TEXT NOT NULL,
    actor      TEXT,
    -- JSON text.
    attributes TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX audit_events_by_time ON audit_events (time DESC, id DESC);
CREATE INDEX audit_events_by_user ON audit_events (user_name, time);
-- Filters by type or token walk the time index: on a single node every extra index is paid
-- for by each authentication event written, and those writes share the gateway's cores.

-- Token changes for watchers in other processes: polled by seq, deleted after a minute.
-- AUTOINCREMENT keeps seq growing even after every row was deleted.
CREATE TABLE token_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id TEXT NOT NULL,
    at       INTEGER NOT NULL
) STRICT;

CREATE INDEX token_changes_by_at ON token_changes (at);
