-- Events by age, for retention: without it each purge pass read the whole events table to find none old enough
-- (on SQLite inside the one writer's transaction: 24 ms at 45,000 events, growing with the table).
CREATE INDEX events_created ON events (created_us);
