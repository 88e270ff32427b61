-- dbops:lint-ignore drop-column no release since 4.2 reads fax_number
ALTER TABLE orders DROP COLUMN fax_number;
-- dbops:lint-ignore drop-column
ALTER TABLE orders DROP COLUMN telex_number;
