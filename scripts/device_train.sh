#!/usr/bin/env bash
# Train the three methods of one encoder on a lent GPU machine (the `device` tool), in one call.
#
# Here, first:   bash scripts/device_prepare.sh   (packs data/pack and data/benchmarks, keeps what
#                travels under 64 MiB)
# Then:          run(command="bash scripts/device_train.sh swinir fit 6.5",
#                    carry=["data/pack", "data/benchmarks"], timeout_s=600)
# Last, here:    bash scripts/device_finish.sh <files_at>   (joins the returned weights, restores)
# A session has 15 device minutes: a start (1-2), this call (MINUTES + ~1.5), one short
# device_fetch.sh call for what did not fit (~1): MINUTES 6.5 leaves room for device_checks.sh.
#
# UNTIL is a step total, or "fit": the three runs first train CALIBRATE steps (inside the warm-up,
# where the step total does not matter yet), the slowest one's seconds per step then set the
# total that ends, annealed, inside MINUTES, and they go on to it (same total for the three).
# Recipes: EDSR-baseline takes configs/<name>.yaml and continues the committed weights (fresh
# optimizer, warm-up) or, on a warm machine, its checkpoint; RDN and SwinIR take
# configs/gpu/<name>.yaml (each method its own encoder from scratch, batch 16) and continue only
# their own checkpoint. The three runs share the GPU (one process each) and train to the same step
# total; MINUTES caps each so the call ends inside the tool's 10-minute limit, and a run that
# stops short is brought level by the next call with the same UNTIL (the machine keeps runs/ while
# it stays warm, ~30 s after a call).
# Exports land in runs/device/<name>.safetensors there and come back in parts of at most 15 MiB
# (the tool returns <= 16 MiB a file, 8 files and 64 MiB a call): as many models as fit, and
# scripts/device_fetch.sh prints the call that returns the rest. When the benchmarks travel
# (data/benchmarks/Set5, Set14), the exports are then evaluated there, on the GPU, at the model
# card's scales ($OUT/eval_<encoder>.json; at most EVAL_SECONDS, default 100).
set -uo pipefail
cd "$(dirname "$0")/.."
encoder=${1:?encoder: edsr, rdn or swinir}; until=${2:?step total}; minutes=${3:-8}
device=${DEVICE:-cuda}; out=${OUT:-runs/device-out}; data=${DATA:-data/pack}
mkdir -p "$out" runs/device
python3 - <<'EOF' || exit 1
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
# three processes share the machine's cores for their input pipelines
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
started=$(date +%s); status=0
names=(); configs=()
for method in hiif liif lte; do
  name=$method-$encoder; config=configs/gpu/$name.yaml
  [ -f "$config" ] || config=configs/$name.yaml
  names+=("$name"); configs+=("$config")
done

train_all() {  # train_all UNTIL MINUTES [EXPORT]: the three runs side by side, to one step total
  local pids=() i
  for i in 0 1 2; do
    python3 -m hiif train --config "${configs[$i]}" --resume --data "$data" --device "$device" \
      --until "$1" --max-minutes "$2" ${3:+--export "runs/device/${names[$i]}.safetensors"} \
      >> "runs/device/${names[$i]}.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
}

if [ "$until" = fit ]; then
  calibrate=${CALIBRATE:-40}
  train_all "$calibrate" "$minutes"
  # the slowest run's seconds per step set the total that the rest of MINUTES reaches (less ~40 s
  # for two process starts and the exports); hiif.train.fitted_step_total
  fitted=$(python3 - "$calibrate" "$minutes" "$started" "${configs[@]}" <<'PY'
import sys, time
from hiif.train import Config, fitted_step_total, seconds_per_step, write_fitted_config
calibrate, minutes, started, configs = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
names = [Config.load(c).name for c in configs]
per_step = max(seconds_per_step(f"runs/{name}/log.tsv", calibrate) for name in names)
left = minutes * 60 - (time.time() - started) - 40
total = fitted_step_total(per_step, calibrate, left, Config.load(configs[0]).optim["steps"])
for name, config in zip(names, configs):
    write_fitted_config(config, total, f"runs/device/configs/{name}.yaml")
print(total, int(left), f"{per_step:.4f}")
PY
) || { echo "device_train: calibration failed"; tail -5 runs/device/*.log; exit 1; }
  read -r until left per_step <<< "$fitted"
  echo "device_train: $per_step s/step (slowest of three); step total $until in the ${left}s left"
  for i in 0 1 2; do configs[$i]=runs/device/configs/${names[$i]}.yaml; done
  minutes=$(python3 -c "print(round(($left + 30) / 60, 2))")
fi
train_all "$until" "$minutes" export
for name in "${names[@]}"; do
  # the log without tqdm's redraws: what was started from, the last progress line, the end
  echo "== $name" >> "$out/train.log"
  tr '\r' '\n' < "runs/device/$name.log" | grep -v '^\s*$' | grep -v '%|' >> "$out/train.log"
  tr '\r' '\n' < "runs/device/$name.log" | grep '%|' | tail -1 >> "$out/train.log"
done
grep -E "^== |step [0-9]+, loss|exported|rror" "$out/train.log"
bash scripts/device_fetch.sh "${names[@]}" || status=1
bench=${BENCHMARKS:-data/benchmarks}
if [ -d "$bench/Set5" ] && [ -d "$bench/Set14" ]; then
  HIIF_WEIGHTS_DIR=runs/device timeout "${EVAL_SECONDS:-100}" python3 -m hiif evaluate \
    --model "${names[0]}" --model "${names[1]}" --model "${names[2]}" --data "$bench/Set5,$bench/Set14" \
    --device "$device" --out "$out/eval_$encoder.json" --quiet || status=1
fi
exit $status
