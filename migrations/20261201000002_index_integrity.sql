-- Index integrity: a file name, once published, keeps its bytes, and a
-- project belongs to whoever first published it. Builds remember who asked
-- for them: `submitter` (the token's id, the GitHub repository, or the
-- client address of a tokenless daemon; queued builds are counted per
-- submitter) and `owner` (whose project a successful build publishes).
-- Rows from before this migration have neither.

ALTER TABLE builds ADD COLUMN submitter TEXT;
ALTER TABLE builds ADD COLUMN owner TEXT;
CREATE INDEX builds_by_submitter ON builds (submitter, status);

-- What the package index serves: one row per file name, written once.
CREATE TABLE published_files (
    filename TEXT PRIMARY KEY,
    normalized_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    build_id TEXT NOT NULL REFERENCES builds (id),
    published_at BIGINT NOT NULL
);
CREATE INDEX published_files_by_project ON published_files (normalized_name, filename);

-- Who a project name belongs to: `token:<16 hex of sha256(token)>`,
-- `github:<owner>/<name>` or `local` (a tokenless daemon).
CREATE TABLE project_owners (
    normalized_name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    build_id TEXT NOT NULL REFERENCES builds (id),
    created_at BIGINT NOT NULL
);

-- Until now the index served the newest succeeded build of each file name;
-- from now on it serves the first one, whose bytes were published first.
INSERT INTO published_files (filename, normalized_name, sha256, build_id, published_at)
SELECT a.filename, b.normalized_name, a.sha256, b.id, COALESCE(b.finished_at, b.created_at)
FROM artifacts a JOIN builds b ON b.id = a.build_id
WHERE b.status = 'succeeded'
  AND b.id = (SELECT MIN(b2.id) FROM builds b2 JOIN artifacts a2 ON a2.build_id = b2.id
              WHERE a2.filename = a.filename AND b2.status = 'succeeded');

-- Earlier builds did not record their token, only their repository: a
-- project first published from GitHub keeps that repository as its owner;
-- the others are claimed by their next publisher.
INSERT INTO project_owners (normalized_name, owner, build_id, created_at)
SELECT b.normalized_name, 'github:' || LOWER(b.source_repository), b.id, COALESCE(b.finished_at, b.created_at)
FROM builds b
WHERE b.source_repository IS NOT NULL
  AND b.id = (SELECT MIN(p.build_id) FROM published_files p WHERE p.normalized_name = b.normalized_name);
