-- dbops:no-transaction
SET lock_timeout = '2s';
REINDEX INDEX CONCURRENTLY orders_pkey;
REINDEX TABLE orders;
VACUUM FULL orders;
CLUSTER orders USING orders_pkey;
-- audit_log, renamed to audit_events by V9, has no rows.
VACUUM FULL audit_events;
