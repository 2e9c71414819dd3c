#!/usr/bin/env bash
# Here, before device calls (scripts/device_train.sh): make what travels fit the tool's 64 MiB
# (tracked and untracked-not-ignored files, plus carried paths).
#  - data/pack, the training subset that travels, is built from data/trainset if missing, to the
#    size the rest leaves (at most PACK_MB, default 40 MB); data/benchmarks (Set5, Set14: 5.6 MB,
#    copied from ../shared/benchmarks, never committed) lets device_train.sh evaluate there.
#  - RDN and SwinIR weights (30-47 MB each) are left behind: the device runs start from the EDSR
#    decoders (configs/gpu/). They are ignored through .git/info/exclude and, if committed,
#    taken out of the index (git rm --cached) until scripts/device_finish.sh puts them back.
#    Do not commit in between: the commit would delete them.
#  - With ENCODER (bash scripts/device_prepare.sh swinir), the committed weights of its three
#    methods go too, for device_train.sh ... fit to continue them: cut into 15 MiB parts, packed
#    into parcels data/upload/N/ that each fit one call beside the tree, sent by one call each
#    before the training call (a device machine keeps what earlier calls left, while it is warm).
set -euo pipefail
cd "$(dirname "$0")/.."
encoder=${1:-}
limit=$((64 * 1024 * 1024)); hidden=.git/hiif-device-hidden; exclude=.git/info/exclude
mkdir -p .git/info; touch "$exclude" "$hidden"
for pattern in '/weights/*-rdn.*' '/weights/*-swinir.*'; do
  grep -qxF "$pattern" "$exclude" || echo "$pattern" >> "$exclude"
done
git ls-files -- 'weights/*-rdn.*' 'weights/*-swinir.*' >> "$hidden"
sort -u -o "$hidden" "$hidden"
[ -s "$hidden" ] && git rm --cached -q --ignore-unmatch -- $(cat "$hidden") && echo "left behind (index, until device_finish.sh): $(tr '\n' ' ' < "$hidden")"
tree=$(git ls-files -z -c -o --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
bench=${BENCHMARKS:-../shared/benchmarks}
if [ ! -d data/benchmarks ] && [ -d "$bench/Set5" ]; then  # evaluation there, on the GPU
  mkdir -p data/benchmarks && cp -r "$bench/Set5" "$bench/Set14" data/benchmarks/
fi
benchmarks=$(du -cb $(ls -d data/benchmarks 2>/dev/null) /dev/null | tail -1 | cut -f1)
if [ ! -f data/pack/manifest.tsv ]; then
  room=$(( (limit - tree - benchmarks) / 1000000 - 2 )); mb=$(( room < ${PACK_MB:-40} ? room : ${PACK_MB:-40} ))
  [ -d data/trainset ] || python -m hiif.data build-trainset data/trainset
  python -m hiif.data pack-subset data/trainset data/pack --max-mb "$mb"
fi
if [ -n "$encoder" ]; then
  source scripts/device_parts.sh
  rm -rf data/upload
  for method in hiif liif lte; do
    [ -f "weights/$method-$encoder.safetensors" ] || { echo "device_prepare: weights/$method-$encoder.safetensors not found"; exit 1; }
    split_parts "weights/$method-$encoder.safetensors" data/upload/parts
  done
  room=$(( limit - tree - 1024 * 1024 ))  # one parcel per call, beside the tree
  parcel=1; used=0; mkdir -p data/upload/1
  for part in data/upload/parts/*.part*; do
    size=$(stat -c %s "$part")
    if [ $((used + size)) -gt "$room" ]; then parcel=$((parcel + 1)); used=0; mkdir -p "data/upload/$parcel"; fi
    mv "$part" "data/upload/$parcel/"; used=$((used + size))
  done
  for dir in data/upload/[0-9]*/; do cp data/upload/parts/SHA256SUMS "$dir"; done
  rm -r data/upload/parts
  echo "weights to continue: $parcel parcel(s); send each by a call of its own, first, in order:"
  for n in $(seq 1 "$parcel"); do
    echo "  run(command=\"ls data/upload/*\", carry=[\"data/upload/$n\"])"
  done
fi
pack=$(( $(du -cb data/pack | tail -1 | cut -f1) + benchmarks ))
echo "travels: tree $((tree / 1024)) KiB + data/pack, data/benchmarks $((pack / 1024)) KiB = $(( (tree + pack) / 1024 )) KiB of $((limit / 1024))"
[ $((tree + pack)) -le $limit ] || { echo "device_prepare: over 64 MiB; largest files:"; \
  git ls-files -z -c -o --exclude-standard | du -b --files0-from=- | sort -n | tail -5; exit 1; }
