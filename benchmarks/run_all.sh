#!/usr/bin/env bash
# The benchmark suite behind RESULTS.md. About 65 min on a 2-core CPU (2026 EPYC VM); the
# whole-output ×30 render of HIIF-EDSR (--full-x30) adds about 17 min. Prints markdown tables.
set -euo pipefail
cd "$(dirname "$0")"
python oracle_vs_engine.py --repeats 3
python throughput.py
python x30.py --models liif-edsr lte-edsr hiif-edsr hiif-rdn hiif-swinir lte-swinir --fraction 0.1
if [ "${1:-}" = "--full-x30" ]; then
    python x30.py --models hiif-edsr
fi
python quality.py --bf16 --stats
python encode_memory.py --sizes 64 128 192
python encode_memory.py --sizes 64 128 --oracle
python tiles.py
python encode_memory.py --models liif-edsr lte-edsr hiif-edsr hiif-swinir --sizes 384 768 --tile 256
python zoom.py --frames 8
