-- Where a build's source came from (a GitHub push), and the webhook
-- deliveries already handled, so that a redelivery answers with the same
-- build. Twin of ../20261125000002_github.sql.

ALTER TABLE builds ADD COLUMN source_repository TEXT;
ALTER TABLE builds ADD COLUMN source_ref TEXT;
ALTER TABLE builds ADD COLUMN source_commit TEXT;

CREATE TABLE github_deliveries (
    delivery_id TEXT COLLATE "C" PRIMARY KEY,
    build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
