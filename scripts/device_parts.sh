# Sourced by the scripts/device_*.sh: the one format in which weights files travel to and from a
# lent device machine (a call takes 64 MiB and returns files of at most 16 MiB): FILE.partN pieces
# of at most 15 MiB, and a SHA256SUMS line per whole file to check it once it is joined again.
PART_BYTES=$((15 * 1024 * 1024))

split_parts() {  # split_parts FILE DIR: DIR/<name>.part0, .part1 ... and its line in DIR/SHA256SUMS
  mkdir -p "$2"
  split -b "$PART_BYTES" -d -a 1 "$1" "$2/$(basename "$1").part"
  (cd "$(dirname "$1")" && sha256sum "$(basename "$1")") >> "$2/SHA256SUMS"
}

join_parts() {  # join_parts SUMS DEST DIR...: every file SUMS names, from its parts in the DIRs (in
                # part order, wherever each lies), into DEST, checked; a damaged one is removed
  local sums=$1 dest=$2 sum name parts
  shift 2
  mkdir -p "$dest"
  while read -r sum name; do
    parts=$(for dir in "$@"; do ls "$dir/$name".part* 2>/dev/null; done \
      | awk -F.part '{print $NF "\t" $0}' | sort -n | cut -f2)
    [ -n "$parts" ] && cat $parts > "$dest/$name"
    echo "$sum  $dest/$name" | sha256sum -c --quiet 2>/dev/null \
      || { rm -f "$dest/$name"; echo "$name: parts missing or damaged" >&2; return 1; }
  done < "$sums"
}
