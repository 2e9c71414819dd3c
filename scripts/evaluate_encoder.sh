#!/usr/bin/env bash
# Evaluate the three methods of one encoder on Set5 and Set14 at the nine scales of the model card,
# in two one-thread processes (on 2 cores that beats one two-thread process), then merge and write
# runs/eval_<encoder>.json and docs/psnr_<encoder>.png, fold them into weights/results.json and
# regenerate the tables of weights/MODELS.md. Never beside a training run:
# the two would slow each other many times over.
#   bash scripts/evaluate_encoder.sh edsr [BENCHMARKS_DIR]
# METHODS="hiif lte" measures only those (the models whose files were replaced); the plot and the
# printed tables show the encoder's three models from weights/results.json, the others as recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=${1:-edsr}; bench=${2:-../shared/benchmarks}
models=""
for method in ${METHODS:-hiif liif lte}; do models="$models --model $method-$encoder"; done
mkdir -p runs
# halves meant to be balanced: Set14 x2..x4 | Set14 x6..x8, Set5+Set14 x12..x30 and Set5 x2..x8
# (RDN, 2026-12-02: Set14 x2..x8 took 2,596 s against 1,374 s for the rest; RESULTS section 19)
OMP_NUM_THREADS=1 python -m hiif evaluate $models --data "$bench/Set14" --scales 2,3,4 \
  --out "runs/eval_${encoder}_a.json" --quiet > /dev/null &
( OMP_NUM_THREADS=1 python -m hiif evaluate $models --data "$bench/Set14" --scales 6,8 \
    --out "runs/eval_${encoder}_d.json" --quiet > /dev/null
  OMP_NUM_THREADS=1 python -m hiif evaluate $models --data "$bench/Set5,$bench/Set14" --scales 12,18,24,30 \
    --out "runs/eval_${encoder}_b.json" --quiet > /dev/null
  OMP_NUM_THREADS=1 python -m hiif evaluate $models --data "$bench/Set5" --scales 2,3,4,6,8 \
    --out "runs/eval_${encoder}_c.json" --quiet > /dev/null ) &
wait %1 && wait %2
python - "$encoder" <<'PY'
import json, sys
from pathlib import Path
from hiif.evaluate import format_table, merge_results, plot_results, record_results, write_card, write_results
enc = sys.argv[1]
parts = [r for k in "badc" for r in json.loads(Path(f"runs/eval_{enc}_{k}.json").read_text())]
results = merge_results(parts)
write_results(results, f"runs/eval_{enc}.json")
record = record_results(results, "weights/results.json")
write_card(record, "weights/MODELS.md")
measured = {r["dataset"] for r in results}
shown = [{**r, "psnr": {name: row for name, row in r["psnr"].items()
                        if name == "bicubic" or name.endswith(f"-{enc}")}}
         for r in record if r["dataset"] in measured]
for r in shown:
    print(format_table(r), end="\n\n")
plot_results(shown, f"docs/psnr_{enc}.png")
print(f"runs/eval_{enc}.json, docs/psnr_{enc}.png, weights/results.json and weights/MODELS.md (tables; "
      "the text above them is kept: update it by hand)")
PY
