-- dbops:no-transaction
SET lock_timeout = '2s';
ALTER TABLE events ADD COLUMN origin text;
