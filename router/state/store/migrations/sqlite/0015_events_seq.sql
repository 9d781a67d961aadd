-- Events without AUTOINCREMENT: it kept a counter row in sqlite_sequence that every event insert read and rewrote
-- (two more log pages per commit). A plain INTEGER PRIMARY KEY takes the largest seq + 1, so a seq is never handed
-- out twice as long as the newest event is never deleted: retention keeps it (statements.PURGE_EVENTS).
CREATE TABLE events_by_seq (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    livemode INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    data TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT 'default'
);
INSERT INTO events_by_seq (seq, id, type, created_us, livemode, object_id, data, account)
    SELECT seq, id, type, created_us, livemode, object_id, data, account FROM events ORDER BY seq;
-- Retention may have deleted the newest events under the old counter: a cursor past every kept event is brought
-- back to the newest kept one, so the seqs the new table hands out next (newest kept + 1) are not behind it.
UPDATE webhook_endpoints SET cursor_seq = (SELECT COALESCE(MAX(seq), 0) FROM events_by_seq)
    WHERE cursor_seq > (SELECT COALESCE(MAX(seq), 0) FROM events_by_seq);
DROP TABLE events;
ALTER TABLE events_by_seq RENAME TO events;
CREATE INDEX events_object ON events (object_id, seq);
CREATE INDEX events_created ON events (created_us);
CREATE INDEX events_account_list ON events (account, livemode, seq);
