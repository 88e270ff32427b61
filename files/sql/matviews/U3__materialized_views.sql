-- Undo of V3: put back the three plain views of V2.
-- Drops what V3 created (the aggregated view, both materialized views with their unique
-- indexes, the three indexes on the base tables and the refresh tracking table), then
-- recreates the V2 views exactly as V2 defines them.

DROP VIEW v_match_rate_by_tenant_aggregated;
DROP MATERIALIZED VIEW v_match_rate_by_tenant;
DROP MATERIALIZED VIEW v_dispatch_summary;

DROP INDEX idx_dispatch_attempts_tenant_status_created;
DROP INDEX idx_matches_tenant_created;
DROP INDEX idx_conversion_tenant_gateway_created;

DROP TABLE materialized_view_refresh;

CREATE OR REPLACE VIEW v_dispatch_summary AS
SELECT
  t.id as tenant_id,
  DATE(da."createdAt") as date,
  -- COUNT(da.id), not COUNT(*), so that a tenant with no attempts in the
  -- window reports 0 attempts instead of 1.
  COUNT(da.id) as total_attempts,
  SUM(CASE WHEN da.status = 'success' THEN 1 ELSE 0 END) as success_count,
  SUM(CASE WHEN da.status = 'failed' THEN 1 ELSE 0 END) as failed_count,
  SUM(CASE WHEN da.status = 'pending' THEN 1 ELSE 0 END) as dlq_count,
  -- DispatchAttempt stores no latency, and ORDER BY 0 made this column a
  -- constant 0. It is now the 95th percentile, in milliseconds, of the
  -- attempt's createdAt minus the createdAt of the webhook that carried the
  -- event. Attempts with no matching webhook are left out of the percentile.
  PERCENTILE_CONT(0.95) WITHIN GROUP (
    ORDER BY EXTRACT(EPOCH FROM (da."createdAt" - wh.received_at)) * 1000
  )::int as latency_p95
FROM "Tenant" t
-- The 90-day filter is part of the join so that tenants whose attempts are
-- all older still get a row. In the WHERE clause it dropped those tenants.
LEFT JOIN "DispatchAttempt" da
  ON t.id = da."tenantId"
  AND da."createdAt" >= NOW() - INTERVAL '90 days'
-- The same gatewayEventId can exist for several gateways, so a plain join
-- would repeat an attempt once per gateway. The subquery returns one row.
LEFT JOIN LATERAL (
  SELECT MIN(w."createdAt") as received_at
  FROM "WebhookRaw" w
  WHERE w."tenantId" = da."tenantId"
    AND w."gatewayEventId" = da."eventId"
) wh ON true
GROUP BY t.id, DATE(da."createdAt");

CREATE OR REPLACE VIEW v_match_rate_by_tenant AS
SELECT
  c."tenantId" as tenant_id,
  DATE(c."createdAt") as date,
  c.gateway,
  COUNT(*) as total_conversions,
  SUM(CASE WHEN ml.matched THEN 1 ELSE 0 END) as matched_conversions,
  ROUND(
    100.0 * SUM(CASE WHEN ml.matched THEN 1 ELSE 0 END) / NULLIF(COUNT(*), 0),
    2
  ) as match_rate_pct
FROM "Conversion" c
-- A conversion can have several MatchLog rows. Joining them directly counted
-- the conversion once per row, so the subquery reduces them to one flag per
-- conversion. The flag is true when any of its rows has a finalClickId.
LEFT JOIN (
  SELECT "conversionId", BOOL_OR("finalClickId" IS NOT NULL) as matched
  FROM "MatchLog"
  GROUP BY "conversionId"
) ml ON c.id = ml."conversionId"
WHERE c."createdAt" >= NOW() - INTERVAL '90 days'
GROUP BY c."tenantId", DATE(c."createdAt"), c.gateway;

CREATE OR REPLACE VIEW v_match_rate_by_tenant_aggregated AS
SELECT
  tenant_id,
  date,
  'all' as gateway,
  SUM(total_conversions) as total_conversions,
  SUM(matched_conversions) as matched_conversions,
  ROUND(
    100.0 * SUM(matched_conversions) / NULLIF(SUM(total_conversions), 0),
    2
  ) as match_rate_pct
FROM v_match_rate_by_tenant
GROUP BY tenant_id, date;
