#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, format, lint and doc gates, then
# every test against the real toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace
