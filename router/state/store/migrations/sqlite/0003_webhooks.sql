-- Webhook delivery state: the outbox (the events table) fanned out per endpoint, with every attempt recorded.

-- One row per configured endpoint URL. `cursor_seq` is the last events.seq fanned out to it: events after the
-- cursor are still to be queued, so a crash between commit and delivery loses nothing.
CREATE TABLE webhook_endpoints (
    url TEXT PRIMARY KEY,
    cursor_seq INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since_us INTEGER,
    disabled_us INTEGER
);

-- One row per (endpoint, event). status: pending | delivered | failed (gave up after the retry window).
CREATE TABLE webhook_deliveries (
    url TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    next_attempt_us INTEGER NOT NULL,
    lease_until_us INTEGER,
    last_error TEXT,
    delivered_us INTEGER,
    PRIMARY KEY (url, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, status, next_attempt_us);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (url, object_id, event_seq);

-- Every HTTP attempt, kept for operators and tests: what was sent when, and what came back.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempted_us INTEGER NOT NULL,
    http_status INTEGER,
    error TEXT,
    latency_ms REAL NOT NULL,
    succeeded INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id);
