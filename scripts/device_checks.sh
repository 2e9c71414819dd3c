#!/usr/bin/env bash
# GPU checks on a lent device machine, in one call (a few minutes on an H100/H200):
#   run(command="bash scripts/device_checks.sh", timeout_s=420)
# as a call of its own (it writes 5 files to $OUT; a call returns 8, and device_train.sh's weights
# take most of them), e.g. right after the device_train.sh / device_fetch.sh calls, machine warm.
# Writes to $OUT: the CUDA tests with their measured differences (CUDA vs CPU per precision, a real
# out-of-memory retry), the engine's CUDA throughput (fp32/bf16/fp16), ×30 peak memory, and the
# demo's latency. Each step runs even when an earlier one fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/device-out}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -m pytest -q -s -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log" | tail -n 40
python3 benchmarks/throughput.py --device cuda --precisions fp32 bf16 fp16 \
  --models liif-edsr lte-edsr hiif-edsr hiif-rdn hiif-swinir 2>&1 | tee "$out/throughput_cuda.md"
python3 benchmarks/x30.py --device cuda --fraction 0.2 --models hiif-edsr lte-edsr 2>&1 | tee "$out/x30_cuda.md"
python3 benchmarks/demo_latency.py --device cuda --scales 4,12 2>&1 | tee "$out/demo_latency_cuda.md"
