-- Supervision: `/metrics` counts dead-lettered channel deliveries at every scrape, and
-- the outbox keeps its delivered rows, so the dead ones get their own small index.
CREATE INDEX channel_outbox_dead ON channel_outbox(channel_id) WHERE state = 'dead';
