#!/usr/bin/env bash
# Train the three methods of one encoder on a lent GPU machine (the `device` tool), in one call.
#
# Here, once per machine:   python -m hiif.data pack-subset data/trainset data/pack --max-mb 48
# Then, with the device tool (what travels must stay under 64 MiB, repo included):
#   run(command="bash scripts/device_train.sh edsr 20000 8", carry=["data/pack"], timeout_s=600)
# and copy the returned weights into weights/ (files_at) after checking their steps and PSNR.
#
# The three runs share the GPU (one process each) and each trains to the same step total UNTIL
# with the recipe of configs/<method>-<encoder>.yaml, resuming from runs/ on a warm machine, else
# from the committed weights (fresh optimizer, warm-up). MINUTES caps each run so the call ends
# inside the tool's 10-minute limit; a run that stops short is reported, and the next call
# (same UNTIL) brings it level. Weights and logs land in $OUT (checkpoints are too large to return).
set -uo pipefail
cd "$(dirname "$0")/.."
encoder=${1:?encoder: edsr, rdn or swinir}; until=${2:?step total}; minutes=${3:-8}
device=${DEVICE:-cuda}; out=${OUT:-runs/device-out}; data=${DATA:-data/pack}
mkdir -p "$out"
python3 - <<'EOF' || exit 1
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
pids=()
for method in hiif liif lte; do
  name=$method-$encoder
  python3 -m hiif train --config "configs/$name.yaml" --resume --data "$data" --device "$device" \
    --until "$until" --max-minutes "$minutes" --export > "$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for method in hiif liif lte; do
  name=$method-$encoder
  cp "weights/$name.safetensors" "$out/" 2>/dev/null
  tail -c 300 "$out/$name.log" | tr '\r' '\n' | grep -E "step [0-9]+|error" | tail -1
done
exit $status
