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
# To continue the committed weights instead of starting from scratch: `device_prepare.sh ENCODER`
# here, the upload calls it prints (one parcel of weights each), then this call with "fit": a
# further cycle from half the learning rate, annealed inside MINUTES (hiif.train.write_fitted_config).
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
recipes=("${configs[@]}")  # configs may become fitted ones (runs/device/configs/) based on these

# weights to continue, sent by `scripts/device_prepare.sh ENCODER` in parcels (data/upload/N/, one
# call each): joined, checked, and read by the runs through HIIF_WEIGHTS_DIR
start=0
if compgen -G "data/upload/*/SHA256SUMS" > /dev/null; then
  source scripts/device_parts.sh
  join_parts "$(ls data/upload/*/SHA256SUMS | head -1)" runs/device/start data/upload/* \
    || { echo "device_train: the weights to continue did not all arrive"; exit 1; }
  export HIIF_WEIGHTS_DIR=runs/device/start
  start=$(python3 -c "import sys; from hiif.weights import load_safetensors as l; \
print(max(int(l(f'runs/device/start/{n}.safetensors').metadata.get('steps', 0)) for n in sys.argv[1:]))" "${names[@]}")
  echo "device_train: continuing ${names[*]} from step $start"
  [ "$until" = fit ] || { echo "device_train: continuing weights needs UNTIL=fit"; exit 2; }
fi

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

fit() {  # fit STEP_TOTAL|calibrated: write runs/device/configs/<name>.yaml (hiif.train.write_fitted_config)
  python3 - "$1" "$calibrate" "$minutes" "$started" "$start" "${recipes[@]}" <<'PY'
import sys, time
from hiif.train import Config, fitted_step_total, seconds_per_step, write_fitted_config
total, calibrate, minutes, started, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
configs = sys.argv[6:]
names = [Config.load(c).name for c in configs]
left, per_step = minutes * 60 - (time.time() - started) - 40, 0.0
if total == "calibrated":  # the slowest run's speed sets the total that the time left reaches
    per_step = max(seconds_per_step(f"runs/{n}/log.tsv", start + calibrate, since=start) for n in names)
    cap = Config.load(configs[0]).optim["steps"] if not start else start + 100000
    total = fitted_step_total(per_step, start + calibrate, left, cap)
for name, config in zip(names, configs):
    write_fitted_config(config, int(total), f"runs/device/configs/{name}.yaml", start=start)
print(total, int(left), f"{per_step:.4f}")
PY
}

if [ "$until" = fit ]; then
  # calibration: CALIBRATE steps (in the warm-up, where the step total hardly matters yet), then
  # the slowest run's seconds per step set the total that the rest of MINUTES reaches (less ~40 s
  # for two process starts and the exports)
  calibrate=${CALIBRATE:-40}
  if [ "$start" -gt 0 ]; then  # a provisional cycle: the calibration must read the weights
    fit $((start + 10 * calibrate)) > /dev/null || exit 1
    for i in 0 1 2; do configs[$i]=runs/device/configs/${names[$i]}.yaml; done
  fi
  train_all $((start + calibrate)) "$minutes"
  fitted=$(fit calibrated) || { echo "device_train: calibration failed"; tail -5 runs/device/*.log; exit 1; }
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
