#!/usr/bin/env bash
# Trains the learned judge's built-in model (crates/candor-judge/models/learned.bin) from the
# outside labels in ../shared/data/dev and the project's gold, and prints its grouped
# cross-validation on the China dev halves beside the rules judge. Training is seeded: the same
# data gives the same file, byte for byte. Where SpeechMap's two judges (Grok: `label`, GPT-4o:
# `label_gpt4o`) read an answer differently, it teaches nothing; it is still scored.
#   scripts/train-judge.sh            train and write the model
#   CV_ONLY=1 scripts/train-judge.sh  only the cross-validation figures
#   ALL=1 ...                         also each other labelled set held out the same way (the
#                                     project gold, XSTest, SpeechMap US + EU), the rest training
. "$(dirname "$0")/judge-data.sh"
china=("$dev/speechmap_china_criticism_dev.jsonl" "$dev/speechmap_zh_china_criticism_dev.jsonl")
rest=("$dev/speechmap_us_criticism.jsonl" "$dev/speechmap_eu_criticism.jsonl" "$dev/xstest_v2_labeled.jsonl" "${project_gold[@]}")
train_flags=()
for f in "${rest[@]}"; do train_flags+=(--train "$f"); done
second=(--map second_label=label_gpt4o)
"$candor" judge eval "${second[@]}" --gold "${china[0]}" --gold "${china[1]}" --cv 5 --cv-splits "${SPLITS:-5}" "${train_flags[@]}" --disagreements 0
if [ "${ALL:-0}" = 1 ]; then
  gold=("${project_gold[@]}")
  xstest=("$dev/xstest_v2_labeled.jsonl")
  western=("$dev/speechmap_us_criticism.jsonl" "$dev/speechmap_eu_criticism.jsonl")
  # Held out: each set scored by 5-fold grouped CV, trained on its other folds and everything else.
  held_out() {
    local name=$1 scored=$2 flags=() f
    shift 2
    for f in $scored; do flags+=(--gold "$f"); done
    for f in "$@"; do flags+=(--train "$f"); done
    echo "== $name"
    "$candor" judge eval "${second[@]}" "${flags[@]}" --cv 5 --disagreements 0 | sed -n '/^by language/,/^$/p'
  }
  held_out "project gold" "${gold[*]}" "${china[@]}" "${western[@]}" "${xstest[@]}"
  held_out "XSTest v2" "${xstest[*]}" "${china[@]}" "${western[@]}" "${gold[@]}"
  held_out "SpeechMap US + EU" "${western[*]}" "${china[@]}" "${xstest[@]}" "${gold[@]}"
fi
[ "${CV_ONLY:-0}" = 1 ] && exit 0
gold_flags=()
for f in "${china[@]}" "${rest[@]}"; do gold_flags+=(--gold "$f"); done
"$candor" judge train "${second[@]}" "${gold_flags[@]}" --out crates/candor-judge/models/learned.bin
