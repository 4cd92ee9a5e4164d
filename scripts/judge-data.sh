# Sourced by the judge scripts (train-judge.sh, judge-unseen-government.sh, judge-disputed.sh):
# moves to the checkout's root, builds the release binary and names the labelled data.
#   dev           the outside labels ($DEV, else ../shared/data/dev)
#   candor        the binary
#   project_gold  gold/*.jsonl but the held-out file, which measures the judge on prompts no
#                 suite holds and is never trained on
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dev=${DEV:-../shared/data/dev}
cargo build --release --locked -q -p candor
candor=${CARGO_TARGET_DIR:-target}/release/candor
project_gold=()
for f in gold/*.jsonl; do [[ $f == *heldout* ]] || project_gold+=("$f"); done
