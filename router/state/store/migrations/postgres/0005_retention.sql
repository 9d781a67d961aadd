-- Retention (router.retention): the housekeeping deletes in small batches; these keep each batch an index walk.
-- Settled deliveries by age, the ones the purge may delete.
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (created_us) WHERE status IN ('delivered', 'failed');
-- Pending deliveries by event: an event one of them still has to send is never purged.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (event_id) WHERE status = 'pending';
