#!/usr/bin/env bash
# The local engine's speed, side by side with llama.cpp when the llama-cpp-python package is
# installed (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" pip install llama-cpp-python):
# the same GGUF, prompt and threads. Then whole audits of the `quick` suite, one sequence at a
# time and batched, in probes per minute.
#   MODELS="smollm2-135m qwen2.5-coder-0.5b gemma3-270m" THREADS=2 AUDIT=1 scripts/bench-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-"smollm2-135m qwen2.5-coder-0.5b gemma3-270m"}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128}
DECODE=${DECODE:-64}
REPEATS=${REPEATS:-3}
AUDIT=${AUDIT:-1}
cargo build --release --locked -p candor >/dev/null
candor=target/release/candor
export CANDLE_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
have_ref=0
python3 -c "import llama_cpp" 2>/dev/null && have_ref=1
for model in $MODELS; do
  path=$($candor model pull "$model")
  echo "== $model ($THREADS threads, prompt $PROMPT, decode $DECODE, median of $REPEATS)"
  ours=$($candor model bench "$model" --prompt-tokens "$PROMPT" --decode-tokens "$DECODE" --repeats "$REPEATS" --json)
  if [ $have_ref = 1 ]; then
    ref=$(python3 scripts/llama_cpp_ref.py "$path" "$THREADS" "$PROMPT" "$DECODE" "$REPEATS")
  else
    ref='null'
  fi
  python3 - "$ours" "$ref" <<'PY'
import json, sys
ours, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
mb = lambda b: b / 1e6
print(f"  candor  prompt {ours['prompt_tok_s']:8.1f} tok/s   decode {ours['decode_tok_s']:6.1f} tok/s   "
      f"batched x{ours['batch']} {ours['batch_decode_tok_s']:6.1f} tok/s ({ours['batch_decode_tok_s'] / ours['decode_tok_s']:.2f}x one)   "
      f"peak RSS {mb(ours['peak_rss_bytes']):.0f} MB = "
      f"{(ours['peak_rss_bytes'] - ours['kv_cache_bytes']) / ours['file_bytes']:.2f}x file {mb(ours['file_bytes']):.0f} MB "
      f"+ KV caches {mb(ours['kv_cache_bytes']):.0f} MB")
if ref:
    print(f"  llama   prompt {ref['prompt_tok_s']:8.1f} tok/s   decode {ref['decode_tok_s']:6.1f} tok/s   peak RSS {mb(ref['peak_rss_bytes']):.0f} MB")
    print(f"  ratio   prompt {ours['prompt_tok_s'] / ref['prompt_tok_s']:.2f}x   decode {ours['decode_tok_s'] / ref['decode_tok_s']:.2f}x llama.cpp")
else:
    print("  (llama-cpp-python not installed: no reference)")
PY
done
if [ "$AUDIT" = 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  model=${AUDIT_MODEL:-qwen2.5-coder-0.5b}
  echo "== whole audit: local/$model on quick (60 requests)"
  for c in ${AUDIT_CONCURRENCY:-1 8 16}; do
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" $candor --store "$tmp/c$c.db" audit --target "local/$model" --suite quick \
      --concurrency $c --threads "$THREADS" --no-report --quiet --no-cache >/dev/null
    end=$(date +%s.%N)
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'  concurrency {sys.argv[3]}: {s:6.1f} s, {30*60/s:5.1f} probes/min ({60*60/s:5.1f} requests/min), peak RSS {int(sys.argv[4])/1000:.0f} MB')" "$start" "$end" "$c" "$(cat "$tmp/rss")"
  done
fi
