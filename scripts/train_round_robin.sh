#!/usr/bin/env bash
# Train the three methods of one encoder in rounds to equal step totals (round k ends at
# k*STEPS), so that at every round boundary they share the same budget (fair comparisons).
# Resumes from runs/<name>/checkpoint.pt, else from the committed weights; exports
# weights/<name>.safetensors after each model's round.
#   nice -n 19 bash scripts/train_round_robin.sh edsr 1000 4 [FIRST_ROUND] > runs/train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=${1:-edsr}; steps=${2:-1000}; rounds=${3:-4}; first=${4:-1}
[ -d data/trainset ] || python -m hiif.data build-trainset data/trainset
mkdir -p runs
for round in $(seq "$first" "$rounds"); do
  for method in hiif liif lte; do
    echo "=== round $round $method-$encoder $(date -u)"
    python -m hiif train --config "configs/$method-$encoder.yaml" --resume --until $((round * steps)) --export
  done
done
echo "=== done $(date -u)"
