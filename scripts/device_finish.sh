#!/usr/bin/env bash
# Here, after device calls: join the weights that came back (scripts/device_fetch.sh parts in the
# folder the tool names as files_at), check their SHA-256 and keep them in runs/device/ (evaluate
# them before they replace anything in weights/), then undo scripts/device_prepare.sh.
#   bash scripts/device_finish.sh FILES_AT [FILES_AT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/device_parts.sh
for dir in "$@"; do
  [ -f "$dir/SHA256SUMS" ] || { echo "device_finish: no SHA256SUMS in $dir" >&2; exit 1; }
  join_parts "$dir/SHA256SUMS" runs/device "$dir" || exit 1
  while read -r sum name; do
    python - "runs/device/$name" <<'PY'
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="pt") as f:
    m = f.metadata() or {}
print(f"{sys.argv[1]}: step {m.get('steps', '?')}, {float(m.get('train_seconds', 0)) / 60:.1f} min on {m.get('device', '?')}")
PY
  done < "$dir/SHA256SUMS"
done
hidden=.git/hiif-device-hidden
if [ -s "$hidden" ]; then git reset -q -- $(cat "$hidden") && echo "back in the index: $(tr '\n' ' ' < "$hidden")"; fi
rm -f "$hidden"
[ -f .git/info/exclude ] && sed -i '\#^/weights/\*-rdn\.\*$#d; \#^/weights/\*-swinir\.\*$#d' .git/info/exclude
git status --short weights/
