#!/usr/bin/env bash
# The learned judge on a government it was never trained on: for each of SpeechMap's EU and US
# criticism sets, a model is trained on everything else (the China questions, the other
# government, XSTest, the project's gold) and judges the set left out, beside the rules judge.
# Grouped cross-validation keeps questions apart; this keeps a whole government apart, as a new
# country's questions would be. (The rules were written with the US and EU sets in view, so
# their figures here are in-sample and flatter them.)
#   scripts/judge-unseen-government.sh
. "$(dirname "$0")/judge-data.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
always=("$dev/speechmap_china_criticism_dev.jsonl" "$dev/speechmap_zh_china_criticism_dev.jsonl" "$dev/xstest_v2_labeled.jsonl" "${project_gold[@]}")
macro_f1() { "$candor" judge eval --gold "$1" --judge "$2" --disagreements 0 | awk '/macro-F1/ {print $4; exit}'; }
printf '%-12s %8s %8s\n' "left out" learned rules
for left in eu us; do
  other=$([ "$left" = eu ] && echo us || echo eu)
  flags=()
  for f in "${always[@]}" "$dev/speechmap_${other}_criticism.jsonl"; do flags+=(--gold "$f"); done
  "$candor" judge train --map second_label=label_gpt4o "${flags[@]}" --out "$work/$left.bin" 2>"$work/$left.log" \
    || { cat "$work/$left.log" >&2; exit 1; }
  held="$dev/speechmap_${left}_criticism.jsonl"
  printf '%-12s %8s %8s\n' "$left" "$(macro_f1 "$held" "learned:$work/$left.bin")" "$(macro_f1 "$held" rules)"
done
