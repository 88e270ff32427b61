-- status is varchar(20), total is numeric(10,2), customer_id is integer.
ALTER TABLE orders ALTER COLUMN status TYPE varchar(50);
ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2);
ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;
