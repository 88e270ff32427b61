-- ============================================
-- MIGRATION 3: Materialized Views & Optimization
-- ============================================
-- Replaces the V2 views v_dispatch_summary and v_match_rate_by_tenant with
-- materialized views of the same names, and rebuilds
-- v_match_rate_by_tenant_aggregated as a plain view on top of the new
-- v_match_rate_by_tenant.
-- Apply this file in one transaction. It contains no BEGIN or COMMIT of its own.

-- A materialized view cannot take the name of an existing view, so the V2
-- views are dropped first, the dependent aggregated view before its source.
-- There is no CASCADE, so an unexpected dependent object makes the drop fail
-- instead of being removed silently.
DROP VIEW IF EXISTS v_match_rate_by_tenant_aggregated;
DROP VIEW IF EXISTS v_match_rate_by_tenant;
DROP VIEW IF EXISTS v_dispatch_summary;

-- event_count is the number of dispatch attempts, so each retry counts.
CREATE MATERIALIZED VIEW v_dispatch_summary AS
SELECT
  d."tenantId" as tenant_id,
  d.status,
  w.gateway,
  COUNT(*) as event_count,
  -- DispatchAttempt has no updated_at column. Latency is the attempt's
  -- createdAt minus the createdAt of the webhook that carried the event.
  AVG(EXTRACT(EPOCH FROM (d."createdAt" - w."createdAt"))) as avg_latency_seconds,
  MIN(d."createdAt") as earliest_event,
  MAX(d."createdAt") as latest_event
FROM "DispatchAttempt" d
-- Joining on the tenant alone paired every attempt with every webhook of the
-- tenant. The join now also matches the event. WebhookRaw is unique on
-- (tenantId, gateway, gatewayEventId), so an attempt matches at most one
-- webhook per gateway. Attempts whose eventId matches no webhook are left out.
JOIN "WebhookRaw" w
  ON d."tenantId" = w."tenantId"
  AND d."eventId" = w."gatewayEventId"
GROUP BY d."tenantId", d.status, w.gateway;

-- REFRESH MATERIALIZED VIEW CONCURRENTLY needs a unique index on plain
-- columns with no WHERE clause. The key columns come from NOT NULL columns,
-- so uniqueness applies to every row.
CREATE UNIQUE INDEX idx_v_dispatch_summary ON v_dispatch_summary (tenant_id, status, gateway);

CREATE MATERIALIZED VIEW v_match_rate_by_tenant AS
SELECT
  -- The select list named c.tenant_id and c.created_at, which do not exist,
  -- while GROUP BY used "tenantId". Both now use the real columns.
  c."tenantId" as tenant_id,
  DATE(c."createdAt") as match_date,
  w.gateway,
  COUNT(*) as total_conversions,
  COUNT(*) FILTER (WHERE m.matched) as matched_conversions,
  ROUND(100.0 * COUNT(*) FILTER (WHERE m.matched) / COUNT(*), 2) as match_rate_percent
FROM "Conversion" c
-- Conversion.webhookRawId is NOT NULL with a foreign key to WebhookRaw.id,
-- so the inner join finds exactly one webhook per conversion and gateway is
-- never null.
JOIN "WebhookRaw" w ON c."webhookRawId" = w.id
-- A conversion can have several MatchLog rows, including rows for failed
-- attempts. Counting joined rows counted such a conversion several times and
-- as matched even without a match. The subquery reduces them to one flag per
-- conversion, true when any of its rows has a finalClickId, as in V2.
LEFT JOIN (
  SELECT "conversionId", BOOL_OR("finalClickId" IS NOT NULL) as matched
  FROM "MatchLog"
  GROUP BY "conversionId"
) m ON c.id = m."conversionId"
GROUP BY c."tenantId", DATE(c."createdAt"), w.gateway;

-- Unique index for REFRESH MATERIALIZED VIEW CONCURRENTLY. Its key columns
-- are never null (see the inner join above).
CREATE UNIQUE INDEX idx_v_match_rate_by_tenant ON v_match_rate_by_tenant (tenant_id, match_date, gateway);

-- Same output columns as the V2 view. It reads the materialized view, so its
-- data is as of the last refresh and covers all dates, not only 90 days.
CREATE VIEW v_match_rate_by_tenant_aggregated AS
SELECT
  tenant_id,
  match_date as date,
  'all' as gateway,
  SUM(total_conversions) as total_conversions,
  SUM(matched_conversions) as matched_conversions,
  ROUND(
    100.0 * SUM(matched_conversions) / NULLIF(SUM(total_conversions), 0),
    2
  ) as match_rate_pct
FROM v_match_rate_by_tenant
GROUP BY tenant_id, match_date;

-- NOTE: idx_matches_tenant_created duplicates MatchLog_conversionId_idx and
-- idx_conversion_tenant_gateway_created duplicates
-- Conversion_tenantId_gateway_createdAt_idx from V1. The partial index
-- predicates list every DispatchStatus value and restate a NOT NULL column,
-- so they filter out no rows.
CREATE INDEX idx_dispatch_attempts_tenant_status_created
ON "DispatchAttempt" ("tenantId", status, "createdAt" DESC)
WHERE status IN ('success', 'failed', 'pending');

CREATE INDEX idx_matches_tenant_created
ON "MatchLog" ("conversionId" DESC)
WHERE "conversionId" IS NOT NULL;

CREATE INDEX idx_conversion_tenant_gateway_created
ON "Conversion" ("tenantId", gateway, "createdAt" DESC);

-- REFRESH MATERIALIZED VIEW does not update this table, so the job that
-- refreshes the views must set last_refreshed_at.
CREATE TABLE IF NOT EXISTS materialized_view_refresh (
  view_name VARCHAR(100) PRIMARY KEY,
  last_refreshed_at TIMESTAMP DEFAULT NOW(),
  refresh_interval_minutes INT DEFAULT 5
);

INSERT INTO materialized_view_refresh (view_name, last_refreshed_at, refresh_interval_minutes)
VALUES
  ('v_dispatch_summary', NOW(), 5),
  ('v_match_rate_by_tenant', NOW(), 5)
ON CONFLICT (view_name) DO UPDATE SET last_refreshed_at = NOW();
