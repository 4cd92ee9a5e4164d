#!/usr/bin/env bash
# Throughput benchmark of `candor audit` against the mock server, with the mock's raw HTTP
# capacity measured by a load generator (wrk) in the same run, so the figures are a ratio.
#
#   scripts/bench-audit.sh [PROMPTS] [CONCURRENCY] [LATENCY_MS]   (defaults: 2000 64 0)
#   STREAM=1 scripts/bench-audit.sh ...     streamed answers (SSE), for both wrk and candor
#   RUNS=N                                  audits to take the median of (default 5)
#
# Needs wrk (Debian package `wrk`) and GNU time (`time`); installs them with apt-get when
# missing and running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
prompts=${1:-2000}
concurrency=${2:-64}
latency=${3:-0}
out=bench-out
mkdir -p "$out"

need() { command -v "$1" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
[ -x /usr/bin/time ] || need /usr/bin/time time

cargo build --release --locked -q -p candor -p candor-mock
bin=${CARGO_TARGET_DIR:-target}/release

python3 - "$prompts" > "$out/prompts.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    lang = "zh-Hans" if i % 2 else "en"
    text = f"测试问题 {i}：请介绍一下这座城市的历史。" if i % 2 else f"Benchmark question {i}: tell me about the history of this city."
    print(json.dumps({"id": f"b{i // 2}", "prompt": text, "lang": lang, "topic": f"t{i % 10}"}, ensure_ascii=False))
PY

"$bin/candor-mock" --addr 127.0.0.1:0 --latency-ms "$latency" > "$out/mock.log" &
mock=$!
trap 'kill $mock 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$out/mock.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$out/mock.log")

cat > "$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Benchmark question 1: tell me about the history of this city."}],"stream":STREAM}'
LUA
stream=${STREAM:-0}
if [ "$stream" = 1 ]; then sed -i 's/STREAM/true/' "$out/post.lua"; stream_flag=--stream; else sed -i 's/STREAM/false/' "$out/post.lua"; stream_flag=; fi
wrk -t2 -c"$concurrency" -d5s -s "$out/post.lua" "$url/chat/completions" > "$out/wrk.txt"
raw=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
# oha (cargo install oha), a Rust/hyper load generator like candor's own client, where present.
oha_raw=
if command -v oha >/dev/null 2>&1; then
  body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$out/post.lua")
  oha -z 5s -c "$concurrency" -m POST -H 'content-type: application/json' -d "$body" --no-tui \
    "$url/chat/completions" > "$out/oha.txt" 2>&1 || true
  oha_raw=$(awk '/Requests\/sec:/ {print $2; exit}' "$out/oha.txt")
fi

# The audit of 2,000 prompts lasts well under a second, so one run is noisy: take the median
# of several, each into a fresh store.
runs=${RUNS:-5}
rates=()
for i in $(seq "$runs"); do
  rm -f "$out/bench.db" "$out/bench.db-wal" "$out/bench.db-shm"
  /usr/bin/time -v "$bin/candor" --store "$out/bench.db" audit --suite "$out/prompts.jsonl" \
    --target "openai/bench@$url" --concurrency "$concurrency" $stream_flag > "$out/audit.txt" 2> "$out/audit.err"
  rates+=("$(sed -n 's/.* responses in .* s (\([0-9]*\) requests\/s)/\1/p' "$out/audit.err")")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/audit.err")
  wall=$(sed -n 's/.* responses in \([0-9.]*\) s .*/\1/p' "$out/audit.err")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$out/audit.err")
  echo "run $i: ${rates[-1]} requests/s, ${wall} s asking, ${cpu} CPU s in all, peak RSS $((rss_kb / 1024)) MB" >&2
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
stored=$(sqlite3 "$out/bench.db" 'select count(*) from responses' 2>/dev/null || echo "?")

echo "prompts=$prompts concurrency=$concurrency latency_ms=$latency stream=$stream runs=$runs"
echo "mock raw capacity (wrk, 5 s, $concurrency connections): $raw requests/s"
[ -n "$oha_raw" ] && echo "mock raw capacity (oha, 5 s, $concurrency connections): $oha_raw requests/s"
echo "candor audit: $stored responses stored; median $median requests/s of (${rates[*]}) = $(python3 -c "print(f'{$median/$raw:.2f}')") x raw capacity by wrk"
[ -n "$oha_raw" ] && echo "                = $(python3 -c "print(f'{$median/$oha_raw:.2f}')") x raw capacity by oha"
echo "last run: $wall s asking (ideal at this latency: $(python3 -c "print(f'{$prompts / $concurrency * $latency / 1000:.2f}')") s), ${cpu} CPU s for the whole audit, peak RSS $((rss_kb / 1024)) MB"
