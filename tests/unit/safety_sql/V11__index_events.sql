-- dbops:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_created_idx ON events (created_at);
ALTER TABLE events ADD COLUMN source text;
