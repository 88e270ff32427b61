-- A new table, indexed and extended in the same migration.
CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL
);
CREATE INDEX customers_email_idx ON customers (email);
ALTER TABLE customers ADD COLUMN region text NOT NULL;
