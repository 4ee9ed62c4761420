#!/usr/bin/env bash
# The project's test command (README): set up, build once, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One build of every binary and test target; the end-to-end tests run the real
# binaries from target/debug.
cargo build --workspace --all-targets --locked
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The gateway without its default `demo` feature (no reference platform linked) still
# builds and lints; checked, not built, so target/debug/gateway keeps the demo.
cargo clippy -p gateway --no-default-features --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
