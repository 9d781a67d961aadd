-- Payments keep their full state as JSON; indexed columns carry what queries filter and sort on.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    livemode INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    customer TEXT NOT NULL,
    card_fingerprint TEXT,
    test_clock TEXT,
    next_attempt_us INTEGER,
    capture_before_us INTEGER,
    lease_owner TEXT,
    lease_until_us INTEGER,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX payments_list ON payments (livemode, created_us DESC, id DESC);
CREATE INDEX payments_due ON payments (next_attempt_us) WHERE status IN ('pending', 'pending_retry');
CREATE INDEX payments_processing ON payments (status, lease_until_us) WHERE status = 'processing';
CREATE INDEX payments_capture ON payments (status, capture_before_us) WHERE status = 'requires_capture';
CREATE INDEX payments_clock ON payments (test_clock) WHERE test_clock IS NOT NULL;

CREATE TABLE payment_records (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    data TEXT NOT NULL
);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    payment_record TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    processor TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    card_fingerprint TEXT,
    data TEXT NOT NULL
);
CREATE INDEX attempts_record ON attempts (payment_record, created_us);
CREATE INDEX attempts_card ON attempts (card_fingerprint, created_us);
CREATE INDEX attempts_recent ON attempts (created_us DESC);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    livemode INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_object ON events (object_id, seq);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    response_status INTEGER,
    response_body BLOB,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_age ON idempotency_keys (created_us);

CREATE TABLE test_clocks (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
