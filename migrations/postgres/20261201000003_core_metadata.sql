-- PEP 658/714: each wheel's METADATA file, by the sha256 of its bytes. Twin
-- of ../20261201000003_core_metadata.sql.
ALTER TABLE artifacts ADD COLUMN metadata_sha256 TEXT;
