-- customers was created by V1, earlier in the same run.
CREATE INDEX customers_region_idx ON customers (region);
