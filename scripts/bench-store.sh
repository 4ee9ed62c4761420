#!/usr/bin/env bash
# The embedded store's cost: throughput and p99 of the gateway with `[store] path`
# against the same gateway keeping its state in memory, both measured in the same run
# and reported as ratios (store / memory), medians over interleaved rounds. See
# tests/e2e/src/bin/storebench.rs for the workloads (resource create/delete, account
# creation): the two request paths that commit to the store before they answer.
#
#   scripts/bench-store.sh                        # ~2 minutes after the release build
#   ROUNDS=5 DURATION=20 WORKERS=32 scripts/bench-store.sh
#
# Not part of the test suite. Loopback only; the gateways it starts are killed by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p gateway -p e2e --bin gateway --bin storebench >&2
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exec "$TARGET_DIR/release/storebench" "$TARGET_DIR/release/gateway"
