-- events_id_idx was built earlier by CREATE UNIQUE INDEX CONCURRENTLY.
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;
ALTER TABLE orders ADD CONSTRAINT orders_status_key UNIQUE (status);
