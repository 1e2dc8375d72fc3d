-- Builds, their queue jobs, artifacts and logs: the PostgreSQL twin of
-- ../20261125000001_initial.sql (each SQLite migration has one here, with the
-- same version, reaching the same schema). TEXT ids, BIGINT millisecond
-- timestamps, BOOLEAN flags, the same CHECK constraints. Keys and sorted
-- text compare bytewise (COLLATE "C"), as SQLite compares them, whatever
-- locale the database was created with: build ids are cursors of pages.

CREATE TABLE builds (
    id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    project_name TEXT NOT NULL,
    normalized_name TEXT COLLATE "C" NOT NULL,
    project_version TEXT NOT NULL,
    requires_python TEXT NOT NULL DEFAULT '',
    targets TEXT NOT NULL,
    debug BOOLEAN NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}',
    source_hash TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    cached_from TEXT COLLATE "C" REFERENCES builds (id),
    report TEXT,
    error TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX builds_by_creation ON builds (created_at, id);
CREATE INDEX builds_by_project ON builds (normalized_name, status);
CREATE INDEX builds_by_cache_key ON builds (cache_key, status);

-- attempt and max_attempts are BIGINT (SQLite's INTEGER is 64-bit): the
-- daemon reads every integer column as i64.
CREATE TABLE jobs (
    id TEXT COLLATE "C" PRIMARY KEY,
    build_id TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES builds (id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('available', 'running', 'completed', 'discarded', 'cancelled')),
    attempt BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    lease_until BIGINT,
    worker TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX jobs_to_claim ON jobs (state, scheduled_at);

CREATE TABLE artifacts (
    build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    filename TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C",
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (build_id, filename)
);

CREATE TABLE build_logs (
    build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);
