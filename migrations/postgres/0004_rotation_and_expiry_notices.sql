-- The token that replaced this one when it was rotated; NULL for a token never rotated.
-- Expiry notices skip a replaced token: its holder already has the successor.
ALTER TABLE tokens ADD COLUMN replaced_by TEXT;

-- Expiry notices, one row per token, expiry time and warning window. A gateway claims the row
-- before it sends the notice, so a restart or another replica never sends it twice; a claim
-- whose sender stopped without sending is released, or taken over once it is stale.
CREATE TABLE expiry_notices (
    token_id       TEXT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    window_seconds BIGINT NOT NULL,
    -- Random id of the claim of the gateway sending it; NULL when released.
    claim          TEXT,
    claimed_at     TIMESTAMPTZ NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    sent_at        TIMESTAMPTZ,
    PRIMARY KEY (token_id, expires_at, window_seconds)
);

CREATE INDEX expiry_notices_by_expiry ON expiry_notices (expires_at);
