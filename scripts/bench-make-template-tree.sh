#!/usr/bin/env bash
# bench-make-template-tree.sh — a first `make-template` over a tree of many small files (empty hash index / no
# jigdo-file cache): `jigdofs make-template` vs `jigdo-file make-template`, side by side in one run.
#
# Usage:  scripts/bench-make-template-tree.sh [--files N] [--runs R]
#   --files N   files in the tree (default 100000), each 1,100 random bytes; the image is the first tenth of them,
#               concatenated, so every tenth file is a part
#   --runs R    rounds (default 3); medians, with every raw run printed
#
# Each round: a first run, jigdofs with a new, empty --cache-dir, jigdo-file with --no-cache; then a second run over the
# same tree, jigdofs with the cache the first left, jigdo-file with the --cache file an untimed run of its own filled.
# Printed: wall s, peak RSS MB (/usr/bin/time -v), parts in the template (`jigdo-file ls`). Temp files are removed on exit.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FILES=100000 RUNS=3
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    *) echo "usage: $0 [--files N] [--runs R]" >&2; exit 2;;
  esac
done
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh" # median, small_file_tree
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-mktpl-tree.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $FILES files"
small_file_tree "$W" "$FILES"
run() { # LABEL CMD... : prints "wall rss_mb"
  /usr/bin/time -v -o "$W/time" "$@" > /dev/null 2> "$W/err" || { echo "bench: $1 failed: $(tail -3 "$W/err")" >&2; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = t[n] + (n > 1 ? 60 * t[n-1] : 0) + (n > 2 ? 3600 * t[n-2] : 0) }
              /Maximum resident/ { r = $2 / 1024 } END { printf "%.1f %.0f\n", w, r }' "$W/time"
}
parts() { jigdo-file ls --template="$1" | grep -c need-file || true; }
ours=() theirs=() ours_rss=() theirs_rss=() ours2=() theirs2=() ours2_rss=() theirs2_rss=()
for r in $(seq "$RUNS"); do
  rm -rf "$W/cache" "$W"/out-* "$W/jf-cache.db"
  read -r w m < <(cd "$W" && run "$REPO/bin/jigdofs" make-template img.bin tree// -j out-us.jigdo -t out-us.template --cache-dir "$W/cache" -q)
  ours+=("$w") ours_rss+=("$m")
  read -r w2 m2 < <(cd "$W" && run jigdo-file make-template --no-cache --force -r quiet --image=img.bin --jigdo=out-jf.jigdo --template=out-jf.template tree//)
  theirs+=("$w2") theirs_rss+=("$m2")
  echo "round $r, first run: jigdofs ${w} s ${m} MB, $(parts "$W/out-us.template") parts; jigdo-file ${w2} s ${m2} MB, $(parts "$W/out-jf.template") parts"
  read -r w m < <(cd "$W" && run "$REPO/bin/jigdofs" make-template img.bin tree// -j out-us.jigdo -t out-us.template --cache-dir "$W/cache" -q --force)
  ours2+=("$w") ours2_rss+=("$m")
  (cd "$W" && jigdo-file make-template --cache=jf-cache.db --force -r quiet --image=img.bin --jigdo=out-jf.jigdo --template=out-jf.template tree// > /dev/null)
  read -r w2 m2 < <(cd "$W" && run jigdo-file make-template --cache=jf-cache.db --force -r quiet --image=img.bin --jigdo=out-jf.jigdo --template=out-jf.template tree//)
  theirs2+=("$w2") theirs2_rss+=("$m2")
  echo "round $r, second run: jigdofs ${w} s ${m} MB, $(parts "$W/out-us.template") parts; jigdo-file ${w2} s ${m2} MB, $(parts "$W/out-jf.template") parts"
done
echo "| run | tool | wall s (median) | peak RSS MB (median) | runs, wall s |"
echo "|---|---|---|---|---|"
row() { echo "| $1 | $2 | $(printf "%s\n" $3 | median) | $(printf "%s\n" $4 | median) | $3 |"; }
row first "jigdofs make-template" "${ours[*]}" "${ours_rss[*]}"
row first "jigdo-file make-template --no-cache" "${theirs[*]}" "${theirs_rss[*]}"
row second "jigdofs make-template (its hash index)" "${ours2[*]}" "${ours2_rss[*]}"
row second "jigdo-file make-template --cache" "${theirs2[*]}" "${theirs2_rss[*]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
