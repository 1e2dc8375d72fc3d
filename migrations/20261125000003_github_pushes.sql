-- Pushes accepted from GitHub whose commit is still being fetched: written
-- before the webhook is answered, deleted in the transaction that records the
-- build (or when the fetch fails), and fetched again after a restart.

CREATE TABLE github_pushes (
    delivery_id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    clone_url TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
