#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, format, lint and doc gates, then
# every test against the real toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A throwaway S3-compatible server on loopback: the daemon tests run their
# store on it (WHEELWRIGHT_TEST_S3, a fresh prefix per daemon); stopped, and
# its data removed, however the run ends.
# One per run (two runs on one machine must not share or stop each other's).
WHEELWRIGHT_S3_DIR=$(mktemp -d)/s3
export WHEELWRIGHT_S3_DIR
trap 'scripts/services/s3.sh stop; rmdir "$(dirname "$WHEELWRIGHT_S3_DIR")"' EXIT
eval "$(scripts/services/s3.sh start)"
export AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY WHEELWRIGHT_TEST_S3
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace
