-- Events by age, for retention: without it each purge pass read the whole events table to find none old enough.
-- Built under a lock that holds event inserts (every payment write) until it is done: on a big table, build it
-- beforehand without one, `CREATE INDEX CONCURRENTLY events_created ON events (created_us);`, and this finds it.
CREATE INDEX IF NOT EXISTS events_created ON events (created_us);
