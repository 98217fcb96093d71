#!/usr/bin/env bash
# bench-hash-index.sh — loading a large hash index (the checksums of local files that --cache-dir keeps): the time and
# the peak RSS of one process that loads it and looks one file up.
#
# Usage:  scripts/bench-hash-index.sh [--files N] [--runs R] [--repo DIR]
#   --files N   entries in the index (default 100000), each with the five values make-template records
#   --runs R    loads (default 3); medians, with every raw run printed
#   --repo DIR  the jigdofs build to measure (default this one; `npm run build` first): DIR/dist/sources/hash-index.js
#               both writes the index and loads it, so an older build writes its own format
#
# Printed: the index file's size, wall s and peak RSS MB of each load (/usr/bin/time), the same for a process that
# loads a missing index (Node's own start and the module), and whether the lookup found its entry. Temp files are
# removed on exit.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FILES=100000 RUNS=3
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --repo) REPO=$(cd "$2" && pwd); shift 2;;
    *) echo "usage: $0 [--files N] [--runs R] [--repo DIR]" >&2; exit 2;;
  esac
done
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh" # median
MODULE=$REPO/dist/sources/hash-index.js
[ -f "$MODULE" ] || { echo "bench: $MODULE is missing (npm run build in $REPO)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-hash-index.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $FILES entries; $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "$REPO")"
# The entries: a mirror's paths, five values each (make-template's rsync64, head and whole-file sums, MD5, zeros).
node --max-old-space-size=8192 --input-type=module -e '
  const { HashIndex } = await import(process.argv[1]);
  const [file, n] = [process.argv[2], Number(process.argv[3])];
  const index = await HashIndex.load(file);
  for (let i = 0; i < n; i++) {
    index.setValues(`/srv/mirror/debian/pool/main/p/pkg${i}/pkg${i}_1.0-1_amd64.deb`, { size: i, mtimeMs: i + 0.5, ctimeMs: i + 0.25, ino: i, dev: 2049 },
      [["rsync64@1024", "R".repeat(10) + i], ["sha256@0+65536", "H".repeat(42) + i], ["sha256", "C".repeat(42) + i], ["md5", "M".repeat(21) + i], ["zeros", "0"]]);
  }
  await index.save();' "$MODULE" "$W/hash-index.json" "$FILES"
echo "index file: $(stat -c %s "$W/hash-index.json") bytes"
load() { # FILE: prints "wall rss_mb found"
  local last=$((FILES - 1))
  /usr/bin/time -f '%e %M' -o "$W/time" node --max-old-space-size=8192 --input-type=module -e '
    const { HashIndex } = await import(process.argv[1]);
    const index = await HashIndex.load(process.argv[2]);
    const i = Number(process.argv[3]);
    const sum = index.get(`/srv/mirror/debian/pool/main/p/pkg${i}/pkg${i}_1.0-1_amd64.deb`, { size: i, mtimeMs: i + 0.5, ctimeMs: i + 0.25, ino: i, dev: 2049 }, "md5");
    console.log(sum === "M".repeat(21) + i ? "found" : "NOT-FOUND");' "$MODULE" "$1" "$last" > "$W/out"
  read -r wall kb < "$W/time"
  echo "$wall $((kb / 1024)) $(cat "$W/out")"
}
walls=() rss=() bare=()
for r in $(seq "$RUNS"); do
  read -r w m found < <(load "$W/hash-index.json")
  read -r _ b _ < <(load "$W/none.json")
  walls+=("$w") rss+=("$m") bare+=("$b")
  echo "load $r: $w s, peak RSS $m MB, lookup: $found; a missing index: peak RSS $b MB"
done
echo "| entries | index MB | load wall s (median) | peak RSS MB (median) | peak RSS MB, missing index | runs, wall s |"
echo "|---|---|---|---|---|---|"
echo "| $FILES | $(( $(stat -c %s "$W/hash-index.json") / 1000000 )) | $(printf "%s\n" "${walls[@]}" | median) | $(printf "%s\n" "${rss[@]}" | median) | $(printf "%s\n" "${bare[@]}" | median) | ${walls[*]} |"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
