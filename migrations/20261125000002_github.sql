-- Where a build's source came from (a GitHub push), and the webhook
-- deliveries already handled, so that a redelivery answers with the same build.

ALTER TABLE builds ADD COLUMN source_repository TEXT;
ALTER TABLE builds ADD COLUMN source_ref TEXT;
ALTER TABLE builds ADD COLUMN source_commit TEXT;

CREATE TABLE github_deliveries (
    delivery_id TEXT PRIMARY KEY,
    build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
