-- audit_log exists but is empty.
CREATE INDEX audit_log_created_idx ON audit_log (created_at);
