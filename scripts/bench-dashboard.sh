#!/usr/bin/env bash
# Dashboard benchmark: serves a store (default: the 100,000-response store that
# `scripts/bench-scale.sh 100000` leaves) with a release build, times each page with curl
# (the first, cold; then median and fastest of 5), and prints the server's peak RSS.
#
#   scripts/bench-dashboard.sh [STORE] [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:-bench-out/scale/100000/candor.db}
port=${2:-8099}
[ -f "$db" ] || { echo "no store at $db: run scripts/bench-scale.sh 100000 first" >&2; exit 1; }
cargo build --release --locked -q -p candor
bin=${CARGO_TARGET_DIR:-target}/release/candor
"$bin" serve --store "$db" --port "$port" > /dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
run=$(sqlite3 "$db" "select max(id) from runs")
answer=$(sqlite3 "$db" "select id from responses where run_id = $run order by id limit 1 offset 5000")
probe=$(sqlite3 "$db" "select probe_id from responses where id = $answer")
topic=$(sqlite3 "$db" "select topic from probes where probe_id = '$probe' limit 1")
for path in "/" "/runs/$run" "/runs/$run/answers" "/runs/$run/answers?page=1000" \
  "/runs/$run/answers?lang=zh-Hans&compliance=refused" "/answers/$answer" \
  "/runs/$run/probes/$probe" "/runs/$run/topics/$topic" "/label?run=$run&labeller=bench" \
  "/label?run=$run&labeller=bench&mode=stratified"; do
  times=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w "%{time_total}\n" "http://127.0.0.1:$port$path"; done)
  sorted=$(echo "$times" | sort -n)
  # The first is cold (the run's figures are built once, then kept until the store moves).
  printf "%-55s first %s s  median %s s  fastest %s s\n" "$path" "$(echo "$times" | head -1)" \
    "$(echo "$sorted" | sed -n 3p)" "$(echo "$sorted" | head -1)"
done
grep VmHWM "/proc/$pid/status"
