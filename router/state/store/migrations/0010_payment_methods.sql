-- Stored payment methods (issue 15): one card's facts, its network transaction id, and each processor's own
-- credentials for it, kept whole in `data` (the store is the vault); listed newest first, by customer or not.
CREATE TABLE payment_methods (
    id TEXT PRIMARY KEY,
    livemode INTEGER NOT NULL,
    customer TEXT,
    created_us BIGINT NOT NULL,
    data {json} NOT NULL
);
CREATE INDEX payment_methods_list ON payment_methods (livemode, customer, created_us, id);
