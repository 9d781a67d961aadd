-- The PostgreSQL mirror of sqlite/0003_webhooks.sql: the outbox (the events table) fanned out per endpoint,
-- with every attempt recorded.
CREATE TABLE webhook_endpoints (
    url TEXT PRIMARY KEY,
    cursor_seq BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since_us BIGINT,
    disabled_us BIGINT
);

CREATE TABLE webhook_deliveries (
    url TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    object_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_us BIGINT NOT NULL,
    next_attempt_us BIGINT NOT NULL,
    lease_until_us BIGINT,
    last_error TEXT,
    delivered_us BIGINT,
    PRIMARY KEY (url, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, status, next_attempt_us);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (url, object_id, event_seq);

CREATE TABLE webhook_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempted_us BIGINT NOT NULL,
    http_status INTEGER,
    error TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    succeeded BOOLEAN NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id);
