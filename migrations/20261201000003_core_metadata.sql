-- PEP 658/714: the index serves each wheel's METADATA file beside it, named
-- by the sha256 of its bytes (stored in the artifact store like any file).
-- Artifacts recorded before this have none, and the index says so by
-- leaving the field out.
ALTER TABLE artifacts ADD COLUMN metadata_sha256 TEXT;
