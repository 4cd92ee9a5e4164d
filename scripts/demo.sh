#!/usr/bin/env bash
# The main job until the local engine lands: builds candor, starts the scripted mock server on
# a free loopback port, audits the built-in `core` suite on two mock targets in English,
# Simplified and Traditional Chinese, and stops the mock. Results go to ./candor.db, the
# summary to ./candor-summary.json and the report to ./candor-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p candor -p candor-mock
bin=${CARGO_TARGET_DIR:-target}/release
log=$(mktemp)
"$bin/candor-mock" --addr 127.0.0.1:0 > "$log" &
mock=$!
trap 'kill $mock 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$log")
"$bin/candor" audit --suite core \
  --target "openai/mock-qwen@$url" --target "openai/mock-llama@$url" \
  --json candor-summary.json "$@"
