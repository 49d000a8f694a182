-- tokengate schema on PostgreSQL. Times are TIMESTAMPTZ, written at millisecond precision.

CREATE TABLE tokens (
    id                        TEXT PRIMARY KEY,
    user_name                 TEXT NOT NULL,
    description               TEXT NOT NULL,
    scope                     TEXT NOT NULL CHECK (scope IN ('read-only', 'read-write')),
    created_at                TIMESTAMPTZ NOT NULL,
    expires_at                TIMESTAMPTZ,
    -- CIDRs joined by commas; '' means any address.
    allowed_ips               TEXT NOT NULL DEFAULT '',
    -- BIGINT: a request count may be any u32.
    rate_limit_requests       BIGINT,
    rate_limit_period_seconds BIGINT,
    last_used_at              TIMESTAMPTZ,
    last_used_ip              TEXT,
    revoked_at                TIMESTAMPTZ,
    -- argon2id PHC string; the secret itself is never stored.
    secret_hash               TEXT NOT NULL,
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_period_seconds IS NULL))
);

CREATE INDEX tokens_by_created ON tokens (created_at DESC, id DESC);
CREATE INDEX tokens_by_user ON tokens (user_name, created_at DESC, id DESC);

CREATE TABLE credentials (
    user_name  TEXT PRIMARY KEY,
    -- The user's upstream credential, encrypted at rest.
    sealed     BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    time       TIMESTAMPTZ NOT NULL,
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
    attributes JSONB NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_by_time ON audit_events (time DESC, id DESC);
CREATE INDEX audit_events_by_user ON audit_events (user_name, time);
CREATE INDEX audit_events_by_kind ON audit_events (kind, time);
CREATE INDEX audit_events_by_token ON audit_events (token_id, time);
