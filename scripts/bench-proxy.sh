#!/usr/bin/env bash
# Benchmark of `candor proxy`: the same load generator (wrk) against the mock directly and
# through the proxy in the same run, so the figures are ratios. The mock answers 1 KB.
#
#   scripts/bench-proxy.sh [CONCURRENCY] [LATENCY_MS] [SECONDS]   (defaults: 32 0 10)
#   ROUNDS=5 scripts/bench-proxy.sh ...   direct and proxied in turn, five times each
#
# Prints requests/s direct and proxied, their ratio, p50 and p99 latency of each and the
# difference (the proxy's added latency, judging included), the proxy's peak RSS, and its own
# account of the time it spends on each answer (from its /metrics). With
# several rounds each figure is the median over the rounds: on a shared machine one round's
# p99 moves by milliseconds with whatever else runs.
# Needs wrk and GNU time; installs them with apt-get when missing and running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
concurrency=${1:-32}
latency=${2:-0}
seconds=${3:-10}
out=bench-out/proxy
mkdir -p "$out"

need() { command -v "$1" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
[ -x /usr/bin/time ] || need /usr/bin/time time

cargo build --release --locked -q -p candor -p candor-mock
bin=${CARGO_TARGET_DIR:-target}/release

# A 1 KB candid answer, written here.
python3 - "$latency" > "$out/script.json" <<'PY'
import json, sys
text = ("The protests of 1989 ended when the army cleared Tiananmen Square on the night of 3 to 4 June; "
        "the government has never published a full count of the dead, and estimates range from "
        "several hundred to several thousand. ") * 4
print(json.dumps({"default": {"text": text[:1024]}, "latency_ms": int(sys.argv[1])}))
PY

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
"$bin/candor-mock" --addr 127.0.0.1:0 --script "$out/script.json" > "$out/mock.log" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$out/mock.log" && break; sleep 0.1; done
mock_url=$(sed -n 's/^listening on //p' "$out/mock.log")

rm -f "$out/proxy.db" "$out/proxy.db-wal" "$out/proxy.db-shm"
/usr/bin/time -v "$bin/candor" --store "$out/proxy.db" proxy --upstream "$mock_url" \
  --listen 127.0.0.1:0 ${PROXY_FLAGS:-} 2> "$out/proxy.err" &
timer=$!
pids+=($timer)
for _ in $(seq 100); do grep -q listening "$out/proxy.err" && break; sleep 0.1; done
proxy_url=$(sed -n 's/^candor proxy: listening on \(http:[^,]*\),.*/\1/p' "$out/proxy.err")/v1

cat > "$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"What happened at Tiananmen Square in 1989?"}]}'
LUA

load() { wrk -t2 -c"$concurrency" -d"${seconds}s" --latency -s "$out/post.lua" "$1/chat/completions"; }
# Warm both paths, then measure direct and proxied back to back, round by round.
wrk -t1 -c4 -d1s -s "$out/post.lua" "$proxy_url/chat/completions" > /dev/null
rounds=${ROUNDS:-1}
for round in $(seq "$rounds"); do
  load "$mock_url" > "$out/direct.$round.txt"
  load "$proxy_url" > "$out/proxied.$round.txt"
done

rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
# wrk prints percentiles as 1.23ms, 456.00us or 1.20s: in milliseconds.
pct() {
  awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' "$1"
}
# The median over the rounds of a measure ("rate", or a percentile) of one path.
median() {
  for round in $(seq "$rounds"); do
    if [ "$2" = rate ]; then rate "$out/$1.$round.txt"; else pct "$out/$1.$round.txt" "$2"; fi
  done | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}
# The median over the rounds of the proxied minus the direct percentile, each round's pair
# measured back to back.
added() {
  for round in $(seq "$rounds"); do
    echo "$(pct "$out/proxied.$round.txt" "$1") $(pct "$out/direct.$round.txt" "$1")"
  done | awk '{print $1 - $2}' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}
direct=$(median direct rate); proxied=$(median proxied rate)
d50=$(median direct 50%); p50=$(median proxied 50%)
d99=$(median direct 99%); p99=$(median proxied 99%)
a50=$(added 50%); a99=$(added 99%)

# The proxy's own account of its time in each exchange (its handler, before forwarding and
# after the upstream's answer), beside wrk's end-to-end difference, which also holds the
# second hop's HTTP work and the scheduling of all three processes on shared cores.
curl -s "${proxy_url%/v1}/metrics" > "$out/metrics.txt" || true
own=$(awk '
  /^candor_proxy_overhead_seconds_sum / {sum=$2}
  /^candor_proxy_overhead_seconds_count / {n=$2}
  /^candor_proxy_overhead_seconds_bucket\{le="0.0005"\}/ {fast=$2}
  /^candor_proxy_overhead_seconds_bucket\{le="0.002"\}/ {under2=$2}
  END {if (n > 0) printf "mean %.0f us; %.2f%% under 0.5 ms, %.2f%% under 2 ms (%d answers)", sum/n*1e6, 100*fast/n, 100*under2/n, n}
' "$out/metrics.txt")
kill -INT "$(pgrep -P "$timer" candor)" 2>/dev/null || true
wait "$timer" || true
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/proxy.err")
stored=$(python3 -c "import sqlite3,sys
try: print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from responses\").fetchone()[0])
except Exception: print(0)" "$out/proxy.db")

echo "concurrency=$concurrency upstream_latency_ms=$latency seconds=$seconds rounds=$rounds answer=1 KB"
echo "direct:  $direct requests/s, p50 ${d50} ms, p99 ${d99} ms"
echo "proxied: $proxied requests/s, p50 ${p50} ms, p99 ${p99} ms (judged and recorded: $stored stored)"
python3 -c "print(f'ratio proxied/direct: {$proxied/$direct:.2f}; added p50 {$a50:.2f} ms, added p99 {$a99:.2f} ms')"
echo "proxy peak RSS: $((rss_kb / 1024)) MB"
echo "the proxy's own time per answer (its /metrics): ${own:-not read}"
