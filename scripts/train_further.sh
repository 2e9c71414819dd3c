#!/usr/bin/env bash
# A further annealed cycle of one encoder's committed trio on this machine, in equal rounds, so
# that the three methods share the same budget whenever the run is stopped at a round boundary.
#   nice -n 19 bash scripts/train_further.sh ENCODER STEPS [ROUND_STEPS [LR]] > runs/train.log 2>&1 &
#   nice -n 19 bash scripts/train_further.sh edsr 1200 400 1e-4 > runs/train.log 2>&1 &
# Size the cycle to end inside one session: run folders are not committed, so a new machine starts
# without the checkpoints (benchmarks/RESULTS.md section 18).
# METHODS="hiif lte" trains only those (when the diff budget lets a session replace only two of an
# encoder's files, the third is given the same cycle in a later session instead of a wasted one).
# LANES=2 trains two models at once, one thread each (on the AVX2-only 2-core CPU, float32, that
# halved a trio's wall time, RESULTS section 15; with native bf16 one model on both threads is
# faster, section 18): the rounds' jobs are taken in order by whichever lane is free, a lock per model
# keeps its jobs one at a time, and each job's output goes to runs/further/<name>.log.
# Each model's cycle (hiif.train.write_fitted_config): from its committed weights at step S, a
# fresh optimizer warmed up, then a cosine from LR (default half the CPU config's learning rate)
# down to min_lr at S+STEPS. The cycle is written once, to runs/further/<name>.yaml: a rerun after an interruption
# finishes the same cycle from runs/<name>/checkpoint.pt. Rounds export to runs/further/<name>.safetensors;
# weights/ is replaced by hand, and only where scripts/evaluate_encoder.sh shows a gain.
# A first verdict, on one core, with the exports under their zoo names (Set5 was enough in
# benchmarks/RESULTS.md sections 12, 14 and 15):
#   HIIF_WEIGHTS_DIR=runs/further python -m hiif evaluate --model hiif-ENCODER --data ../shared/benchmarks/Set5 --scales 2,3,4,6,8,12,18,24,30
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=${1:?encoder: edsr, rdn or swinir}; steps=${2:-600}; round=${3:-$steps}; lr=${4:-}
methods=${METHODS:-hiif liif lte}
[ -d data/trainset ] || python -m hiif.data build-trainset data/trainset
mkdir -p runs/further
for method in $methods; do  # checked for all before any cycle is written
  name=$method-$encoder
  if [ ! -f "runs/further/$name.yaml" ] && [ -f "runs/$name/checkpoint.pt" ]; then
    # --resume would carry on that run instead of starting this cycle
    echo "runs/$name/checkpoint.pt belongs to an earlier run: move runs/$name away (e.g. into runs/archive/) to start a new cycle" >&2
    exit 2
  fi
done
declare -A start  # each cycle's first step
# one Python start for all methods (importing torch costs seconds): writes the cycles not yet
# written, then prints "METHOD FIRST_STEP" for each, read from its cycle
while read -r method first; do start[$method]=$first; done < <(
  python - "$encoder" "$steps" "$lr" $methods <<'PY'
import sys
from pathlib import Path
import yaml
encoder, steps, lr, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
for method in methods:
    name, cycle = f"{method}-{encoder}", Path(f"runs/further/{method}-{encoder}.yaml")
    if not cycle.exists():
        from hiif.train import write_fitted_config
        from hiif.weights import WEIGHTS_DIR, load_safetensors
        first = int(load_safetensors(WEIGHTS_DIR / f"{name}.safetensors").metadata.get("steps", 0))
        write_fitted_config(f"configs/{name}.yaml", first + steps, cycle, start=first,
                            restart_lr=float(lr) if lr else None)
        print(f"{name}: further cycle {first} -> {first + steps}", file=sys.stderr)
    print(method, yaml.safe_load(cycle.read_text())["optim"]["restart_at"])
PY
)
[ "${#start[@]}" -eq "$(wc -w <<< "$methods")" ] || { echo "train_further: the cycles could not be written" >&2; exit 1; }
rounds=$(( (steps + round - 1) / round ))
round_jobs() {  # "K NAME UNTIL" for every round's jobs (one per method), in order
  for k in $(seq 1 $rounds); do
    for method in $methods; do
      echo "$k $method-$encoder $(( ${start[$method]} + (k * round < steps ? k * round : steps) ))"
    done
  done
}
lanes=${LANES:-1}
if [ "$lanes" -le 1 ]; then
  round_jobs | while read -r k name until; do
    echo "=== round $k $name to step $until $(date -u)"
    python -m hiif train --config "runs/further/$name.yaml" --resume --until "$until" --export "runs/further/$name.safetensors" < /dev/null
  done
else
  # a job that finds its model already past UNTIL (its lane fell behind) only re-exports it
  round_jobs | OMP_NUM_THREADS=1 xargs -P "$lanes" -L 1 bash -c '
    k=$0 name=$1 until=$2
    exec 9> "runs/further/$name.lock" && flock 9
    echo "=== round $k $name to step $until $(date -u)"
    python -m hiif train --config "runs/further/$name.yaml" --resume --until "$until" \
      --export "runs/further/$name.safetensors" >> "runs/further/$name.log" 2>&1'
fi
echo "=== done $(date -u)"
