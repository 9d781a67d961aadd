-- Retention walks events in seq order up to the first one young enough to keep (statements.PURGE_EVENTS): the
-- index of ages it read before cost every event insert one more B-tree.
DROP INDEX IF EXISTS events_created;
