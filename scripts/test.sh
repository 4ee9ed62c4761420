#!/usr/bin/env bash
# The project's test command (README): set up, build once, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One build of every binary and test target; the end-to-end tests run the real
# binaries from target/debug.
cargo build --workspace --all-targets --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
