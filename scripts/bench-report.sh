#!/usr/bin/env bash
# Report benchmark: fills a store with about 100,000 judged responses (suite `core`, 2 targets,
# 2 languages, 1,389 samples each) from the mock server, then times `candor report` as HTML and
# as JSON with GNU time (wall seconds and peak RSS).
#
#   scripts/bench-report.sh [SAMPLES]   (default 1389: 18 probes x 2 languages x 2 targets x 1389 = 100,008)
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-1389}
out=bench-out
mkdir -p "$out"
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
cargo build --release --locked -q -p candor -p candor-mock
bin=${CARGO_TARGET_DIR:-target}/release

"$bin/candor-mock" --addr 127.0.0.1:0 > "$out/mock.log" &
mock=$!
trap 'kill $mock 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$out/mock.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$out/mock.log")

db="$out/report-bench.db"
if [ ! -f "$db" ]; then
  "$bin/candor" --store "$db" audit --suite core --samples "$samples" --concurrency 64 --no-report --quiet \
    --target "openai/a@$url" --target "openai/b@$url" > /dev/null
fi
echo "store: $(sqlite3 "$db" 'select count(*) from verdicts') verdicts, $(du -h "$db" | cut -f1)"
for format in html json; do
  /usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin/candor" --store "$db" report --format "$format" --out "$out/report.$format"
  read -r wall rss < "$out/time.txt"
  echo "report --format $format: ${wall} s, peak RSS $((rss / 1024)) MB, file $(du -h "$out/report.$format" | cut -f1)"
done
/usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin/candor" --store "$db" export --out "$out/export.jsonl" 2> /dev/null
read -r wall rss < "$out/time.txt"
echo "export --format jsonl: ${wall} s, peak RSS $((rss / 1024)) MB, file $(du -h "$out/export.jsonl" | cut -f1), $(wc -l < "$out/export.jsonl") rows"
