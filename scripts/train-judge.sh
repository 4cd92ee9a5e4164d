#!/usr/bin/env bash
# Trains the learned judge's built-in model (crates/candor-judge/models/learned.bin) from the
# outside labels in ../shared/data/dev and the project's gold, and prints its grouped
# cross-validation on the China dev halves beside the rules judge. Training is seeded: the same
# data gives the same file, byte for byte.
#   scripts/train-judge.sh            train and write the model
#   CV_ONLY=1 scripts/train-judge.sh  only the cross-validation figures
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${DEV:-../shared/data/dev}
cargo build --release --locked -q -p candor
candor=${CARGO_TARGET_DIR:-target}/release/candor
china=("$dev/speechmap_china_criticism_dev.jsonl" "$dev/speechmap_zh_china_criticism_dev.jsonl")
rest=("$dev/speechmap_us_criticism.jsonl" "$dev/speechmap_eu_criticism.jsonl" "$dev/xstest_v2_labeled.jsonl" gold/*.jsonl)
train_flags=()
for f in "${rest[@]}"; do train_flags+=(--train "$f"); done
"$candor" judge eval --gold "${china[0]}" --gold "${china[1]}" --cv 5 --cv-splits "${SPLITS:-5}" "${train_flags[@]}" --disagreements 0
[ "${CV_ONLY:-0}" = 1 ] && exit 0
gold_flags=()
for f in "${china[@]}" "${rest[@]}"; do gold_flags+=(--gold "$f"); done
"$candor" judge train "${gold_flags[@]}" --out crates/candor-judge/models/learned.bin
