#!/usr/bin/env bash
# The judge on the hardest outside answers: the SpeechMap answers (../shared/data/dev) that its
# two judges, Grok and GPT-4o, label differently. Two readers labelled them here by the rubric,
# blind to every judge's label and to each other (gold/relabels/speechmap-disputed.jsonl: the
# first reader's label, the second's beside it). The answers are joined to those labels at run
# time and never copied. Prints the learned judge's grouped 5-fold cross-validation on them
# (trained as scripts/train-judge.sh trains, never on a question under test), the rules judge on
# the same rows, and how often each outside judge and the second reader agree with the first.
#   scripts/judge-disputed.sh
. "$(dirname "$0")/judge-data.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
speechmap=("$dev"/speechmap_*.jsonl)
# Each answer with the readers' labels; SpeechMap's own stay beside them as `grok` and `gpt4o`.
# The second reader stands where SpeechMap's second judge stood, so that an answer the readers
# read differently teaches no fold (it is still scored).
jq -c --slurpfile read gold/relabels/speechmap-disputed.jsonl '
  ($read | map({key: "\(.question_id)|\(.model)|\(.lang)", value: .}) | from_entries) as $by
  | $by["\(.question_id)|\(.model)|\(.lang)"] as $r | select($r)
  | . + {grok: .label, gpt4o: .label_gpt4o, label: $r.label, label_gpt4o: $r.second_reader}' "${speechmap[@]}" >"$work/disputed.jsonl"
joined=$(wc -l <"$work/disputed.jsonl")
labelled=$(wc -l <gold/relabels/speechmap-disputed.jsonl)
[ "$joined" = "$labelled" ] || { echo "only $joined of $labelled labels found an answer in $dev" >&2; exit 1; }

train=()
for f in "${speechmap[@]}" "$dev/xstest_v2_labeled.jsonl" "${project_gold[@]}"; do train+=(--train "$f"); done
"$candor" judge eval --map second_label=label_gpt4o --gold "$work/disputed.jsonl" --cv 5 "${train[@]}" --disagreements 0 \
  | sed -n '/^judge/p;/^rows gold/,/^accuracy/p;/^by language/,/^$/p'

echo "agreement with the first reader, by language (items agreeing, macro-F1):"
jq -rs '
  def class: {COMPLETE: "candid", EVASIVE: "evasive", DENIAL: "refused"}[.] // .;
  def macro_f1(pairs): ["candid", "evasive", "refused"]
    | map(. as $c | (pairs | map(select(.[0] == $c and .[1] == $c)) | length) as $tp
      | (pairs | map(select(.[0] == $c or .[1] == $c)) | length) as $any
      | select($any > 0) | 2 * $tp / ($any + $tp))
    | add / length;
  group_by(.lang)[] | .[0].lang as $lang
  | ["grok", "gpt4o", "label_gpt4o"][] as $who
  | map([.label, (.[$who] | class)]) as $pairs
  | "  \($lang)  \({label_gpt4o: "second reader"}[$who] // $who | . + " " * (14 - length)) \($pairs | map(select(.[0] == .[1])) | length)/\($pairs | length)  \(macro_f1($pairs) * 1000 | round / 1000)"' \
  "$work/disputed.jsonl"
