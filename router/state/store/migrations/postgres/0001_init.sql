-- The PostgreSQL mirror of sqlite/0001_init.sql: the same tables and columns, PostgreSQL types.
-- Payments keep their full state as JSON; indexed columns carry what queries filter and sort on.
-- Times are integer microseconds since the epoch, as in SQLite, so both stores compare them the same way.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    livemode BOOLEAN NOT NULL,
    created_us BIGINT NOT NULL,
    status TEXT NOT NULL,
    customer TEXT NOT NULL,
    card_fingerprint TEXT,
    test_clock TEXT,
    next_attempt_us BIGINT,
    capture_before_us BIGINT,
    lease_owner TEXT,
    lease_until_us BIGINT,
    version INTEGER NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX payments_list ON payments (livemode, created_us DESC, id DESC);
-- The retry queue: claimed with FOR UPDATE SKIP LOCKED in next_attempt_us order.
CREATE INDEX payments_due ON payments (next_attempt_us) WHERE status IN ('pending', 'pending_retry');
CREATE INDEX payments_processing ON payments (lease_until_us) WHERE status = 'processing';
CREATE INDEX payments_capture ON payments (capture_before_us) WHERE status = 'requires_capture';
CREATE INDEX payments_clock ON payments (test_clock) WHERE test_clock IS NOT NULL;

CREATE TABLE payment_records (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    data JSONB NOT NULL
);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    -- insertion order, the tie-break SQLite takes from rowid
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    payment_record TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    processor TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    card_fingerprint TEXT,
    data JSONB NOT NULL
);
CREATE INDEX attempts_record ON attempts (payment_record, created_us, seq);
CREATE INDEX attempts_card ON attempts (card_fingerprint, created_us);
CREATE INDEX attempts_recent ON attempts (created_us DESC) WHERE state = 'settled';

-- Writers take an advisory lock before inserting events (see PostgresStore._insert_events), so seq order is
-- commit order: a reader that has seen seq N never sees a lower seq commit later.
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    livemode BOOLEAN NOT NULL,
    object_id TEXT NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX events_object ON events (object_id, seq);
CREATE INDEX events_mode ON events (livemode, seq);

-- One row per (caller, key): the primary key is what makes two replicas given one key create one payment.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    state TEXT NOT NULL,
    response_status INTEGER,
    response_body BYTEA,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_age ON idempotency_keys (created_us);

CREATE TABLE test_clocks (
    id TEXT PRIMARY KEY,
    data JSONB NOT NULL
);
