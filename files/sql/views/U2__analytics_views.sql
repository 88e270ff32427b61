-- Undo of V2: drop its three views, the aggregated one first because it reads
-- v_match_rate_by_tenant.
DROP VIEW v_match_rate_by_tenant_aggregated;
DROP VIEW v_match_rate_by_tenant;
DROP VIEW v_dispatch_summary;
