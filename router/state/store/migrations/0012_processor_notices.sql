-- What a processor told us of an attempt by its own webhook (Adyen's AUTHORISATION for a payment answered
-- `Received`), kept as it came, per attempt id: every replica, and every adapter a reload builds, reads the same
-- answer when it asks what became of that attempt.
CREATE TABLE processor_notices (
    attempt_id TEXT PRIMARY KEY,
    processor TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    data {json} NOT NULL
);
