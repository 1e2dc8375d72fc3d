#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, format, lint and doc gates, then
# every test against the real toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# A real PostgreSQL server on loopback for the whole run, removed at the end.
scripts/services/postgres.sh stop
WHEELWRIGHT_TEST_POSTGRES="$(scripts/services/postgres.sh start)"
trap 'scripts/services/postgres.sh stop' EXIT

# Everything, on SQLite (the embedded default); the tests that need
# PostgreSQL (multi_daemon, and migrations' PostgreSQL test: ignored here) run in the second
# pass, which includes them (no other test of those files is ignored).
cargo test --workspace

# The daemon's tests that exercise the database, again on PostgreSQL: each
# TestApp gets a fresh database of its own. Skipped there: the tests whose
# subject is the SQLite file itself (they open it, lock it, or restart a
# daemon on the same file).
WHEELWRIGHT_TEST_POSTGRES="$WHEELWRIGHT_TEST_POSTGRES" cargo test -p wheelwright \
  --test api --test submit --test service --test queue_limits --test index_integrity --test index_pep \
  --test bad_input --test github --test migrations --test multi_daemon -- --include-ignored \
  --skip a_damaged_row_is_an_error_not_a_silent_default \
  --skip a_locked_database_is_a_clear_503_and_nothing_is_lost \
  --skip a_push_accepted_before_a_restart_is_fetched_and_built_after_it \
  --skip the_upgrade_publishes_the_first_bytes_and_keeps_github_projects_with_their_repository
