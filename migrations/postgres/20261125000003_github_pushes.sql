-- Pushes accepted from GitHub whose commit is still being fetched: written
-- before the webhook is answered, deleted in the transaction that records the
-- build (or when the fetch fails), and fetched again after a restart. Twin of
-- ../20261125000003_github_pushes.sql.

CREATE TABLE github_pushes (
    delivery_id TEXT COLLATE "C" PRIMARY KEY,
    repository TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    clone_url TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
