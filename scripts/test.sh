#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, format, lint and doc gates, then
# every test against the real toolchain — first on the embedded default
# (SQLite and the local store), then the daemon's tests again on a real
# PostgreSQL and a real S3-compatible server, as several daemons share them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# Throwaway servers on loopback for the whole run, stopped and their data
# removed however the run ends. Their directories are this run's own: two
# runs on one machine must not share or stop each other's servers. (The
# `postgres` user, which runs the server, must be able to enter it.)
run_dir=$(mktemp -d)
chmod 755 "$run_dir"
export WHEELWRIGHT_S3_DIR="$run_dir/s3" WHEELWRIGHT_PG_DIR="$run_dir/pg"
stop_services() {
  scripts/services/s3.sh stop || true
  scripts/services/postgres.sh stop || true
  rm -rf "$run_dir"
}
trap stop_services EXIT
postgres_url="$(scripts/services/postgres.sh start)"
eval "$(scripts/services/s3.sh start)"
export AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
s3_url="$WHEELWRIGHT_TEST_S3"
unset WHEELWRIGHT_TEST_S3

# Everything, on SQLite and the local store (the embedded default). The
# object-store tests (tests/store.rs, tests/s3.rs) start servers of their
# own here; the tests that need PostgreSQL (multi_daemon, and the
# PostgreSQL migration tests) are ignored in this pass.
cargo test --workspace

# The daemon's tests that exercise the database and the store, again on
# PostgreSQL + S3: each TestApp gets a fresh database and a fresh store
# prefix of its own. Skipped there: the tests whose subject is the SQLite
# file itself (they open it, lock it, or restart a daemon on the same file).
WHEELWRIGHT_TEST_POSTGRES="$postgres_url" WHEELWRIGHT_TEST_S3="$s3_url" cargo test -p wheelwright \
  --test api --test submit --test service --test queue_limits --test index_integrity --test index_pep \
  --test bad_input --test github --test migrations --test migrate --test multi_daemon --test store --test s3 -- --include-ignored \
  --skip a_damaged_row_is_an_error_not_a_silent_default \
  --skip a_locked_database_is_a_clear_503_and_nothing_is_lost \
  --skip a_push_accepted_before_a_restart_is_fetched_and_built_after_it \
  --skip the_upgrade_publishes_the_first_bytes_and_keeps_github_projects_with_their_repository
