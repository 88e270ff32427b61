ALTER TABLE orders DROP COLUMN legacy_code;
ALTER TABLE orders RENAME COLUMN note TO remarks;
ALTER TABLE audit_log RENAME TO audit_events;
DROP TABLE order_drafts;
