-- PEP 592: a published file can be yanked (installers skip it unless a
-- requirement pins its exact version) and unyanked. NULL: not yanked; any
-- string, the empty one included, is the reason given.
ALTER TABLE published_files ADD COLUMN yanked_reason TEXT;
