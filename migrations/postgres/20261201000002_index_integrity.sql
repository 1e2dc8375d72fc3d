-- Index integrity: a file name, once published, keeps its bytes, and a
-- project belongs to whoever first published it. Twin of
-- ../20261201000002_index_integrity.sql (see there for the columns' meaning).

ALTER TABLE builds ADD COLUMN submitter TEXT;
ALTER TABLE builds ADD COLUMN owner TEXT;
CREATE INDEX builds_by_submitter ON builds (submitter, status);

CREATE TABLE published_files (
    filename TEXT COLLATE "C" PRIMARY KEY,
    normalized_name TEXT COLLATE "C" NOT NULL,
    sha256 TEXT NOT NULL,
    build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id),
    published_at BIGINT NOT NULL
);
CREATE INDEX published_files_by_project ON published_files (normalized_name, filename);

CREATE TABLE project_owners (
    normalized_name TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id),
    created_at BIGINT NOT NULL
);

-- The index serves the first succeeded build of each file name.
INSERT INTO published_files (filename, normalized_name, sha256, build_id, published_at)
SELECT a.filename, b.normalized_name, a.sha256, b.id, COALESCE(b.finished_at, b.created_at)
FROM artifacts a JOIN builds b ON b.id = a.build_id
WHERE b.status = 'succeeded'
  AND b.id = (SELECT MIN(b2.id) FROM builds b2 JOIN artifacts a2 ON a2.build_id = b2.id
              WHERE a2.filename = a.filename AND b2.status = 'succeeded');

INSERT INTO project_owners (normalized_name, owner, build_id, created_at)
SELECT b.normalized_name, 'github:' || LOWER(b.source_repository), b.id, COALESCE(b.finished_at, b.created_at)
FROM builds b
WHERE b.source_repository IS NOT NULL
  AND b.id = (SELECT MIN(p.build_id) FROM published_files p WHERE p.normalized_name = b.normalized_name);
