-- PEP 592 yanking. Twin of ../20261201000004_yanked.sql: NULL, not yanked;
-- any string, the empty one included, is the reason given.
ALTER TABLE published_files ADD COLUMN yanked_reason TEXT;
