-- events is large; orders is small.
ALTER TABLE events ALTER COLUMN kind SET NOT NULL;
ALTER TABLE orders ALTER COLUMN status SET NOT NULL;
