#!/usr/bin/env bash
# On the device machine: put runs/device/<name>.safetensors into $OUT in parts of at most 15 MiB,
# with their SHA-256 in $OUT/SHA256SUMS, for as many of the named models (in order) as one call
# returns (8 files, 64 MiB; one file goes to train.log, one to SHA256SUMS), and print the call
# that returns the rest:   run(command="bash scripts/device_fetch.sh lte-rdn")
# Here, scripts/device_finish.sh joins the parts and checks the sums.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/device_parts.sh
out=${OUT:-runs/device-out}; part=$PART_BYTES
max_files=6; max_bytes=$((62 * 1024 * 1024))
mkdir -p "$out"
files=0; bytes=0; left=()
for name in "$@"; do
  src=runs/device/$name.safetensors
  [ -f "$src" ] || { echo "device_fetch: $src not found" >&2; exit 1; }
  size=$(stat -c %s "$src"); parts=$(( (size + part - 1) / part ))
  if [ ${#left[@]} -gt 0 ] || [ $((files + parts)) -gt $max_files ] || [ $((bytes + size)) -gt $max_bytes ]; then
    left+=("$name"); continue
  fi
  split_parts "$src" "$out"
  files=$((files + parts)); bytes=$((bytes + size))
  echo "device_fetch: $name.safetensors ($size bytes) in $parts part(s)"
done
if [ ${#left[@]} -gt 0 ]; then
  echo "device_fetch: not returned in this call: ${left[*]}; next, at once (the machine stays warm ~30 s):"
  echo "  run(command=\"bash scripts/device_fetch.sh ${left[*]}\")"
fi
