#!/usr/bin/env bash
# Sets up and runs the gateway in front of the embedded reference platform.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p gateway
exec target/release/gateway demo "$@"
