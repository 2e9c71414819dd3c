#!/usr/bin/env bash
# Train the three methods of one encoder on a lent GPU machine (the `device` tool), in one call.
#
# Here, first:   bash scripts/device_prepare.sh   (packs data/pack, keeps what travels under 64 MiB)
# Then:          run(command="bash scripts/device_train.sh rdn 5000 7", carry=["data/pack"], timeout_s=600)
# Last, here:    bash scripts/device_finish.sh <files_at>   (joins the returned weights, restores)
# A session has 15 device minutes: a start (1-2), this call (MINUTES + ~1), one short
# device_fetch.sh call per further RDN model (~1 each): MINUTES 7 fits.
#
# Recipes: EDSR-baseline takes configs/<name>.yaml and continues the committed weights (fresh
# optimizer, warm-up) or, on a warm machine, its checkpoint; RDN and SwinIR take
# configs/gpu/<name>.yaml (each method its own encoder from scratch, batch 16) and continue only
# their own checkpoint. The three runs share the GPU (one process each) and train to the same step
# total UNTIL; MINUTES caps each so the call ends inside the tool's 10-minute limit, and a run that
# stops short is brought level by the next call with the same UNTIL (the machine keeps runs/ while
# it stays warm, ~30 s after a call).
# Exports land in runs/device/<name>.safetensors there and come back in parts of at most 15 MiB
# (the tool returns ≤ 16 MiB a file, 8 files and 64 MiB a call): as many models as fit, and
# scripts/device_fetch.sh prints the call that returns the rest.
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
names=(); pids=()
for method in hiif liif lte; do
  name=$method-$encoder; config=configs/gpu/$name.yaml
  [ -f "$config" ] || config=configs/$name.yaml
  names+=("$name")
  python3 -m hiif train --config "$config" --resume --data "$data" --device "$device" \
    --until "$until" --max-minutes "$minutes" --export "runs/device/$name.safetensors" \
    > "runs/device/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for name in "${names[@]}"; do
  # the log without tqdm's redraws: what was started from, the last progress line, the end
  echo "== $name" >> "$out/train.log"
  tr '\r' '\n' < "runs/device/$name.log" | grep -v '^\s*$' | grep -v '%|' >> "$out/train.log"
  tr '\r' '\n' < "runs/device/$name.log" | grep '%|' | tail -1 >> "$out/train.log"
done
grep -E "^== |step [0-9]+, loss|exported|rror" "$out/train.log"
bash scripts/device_fetch.sh "${names[@]}" || status=1
exit $status
