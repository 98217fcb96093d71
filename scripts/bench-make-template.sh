#!/usr/bin/env bash
# bench-make-template.sh — `jigdofs make-template` (ISO-aware, and generic with --no-iso) vs `jigdo-file
# make-template` on the same image and package tree, side by side in one run.
#
# Usage:  scripts/bench-make-template.sh [FIXTURE_DIR] [--runs N]
#   FIXTURE_DIR  made by scripts/make-fixture.sh (default /work/bench-data/2g): its ISO and mirror/ tree
#   --runs N     rounds (default 3); the table shows medians, every raw run is printed too
#
# Each tool runs on a warm page cache and a warm hash cache (jigdofs: its hash index, filled by a first
# run whose candidate reads are counted and printed; jigdo-file: its --cache db, filled by a first run),
# so what is timed is finding the parts and writing the outputs. Printed per configuration: wall time, CPU
# (user+sys), peak RSS (/usr/bin/time -v), template size, parts; and whether `jigdo-file ls` lists the same
# parts at the same offsets for our template as for jigdo-file's. The load average is printed first and
# last: the machine may be shared. Nothing is written into the repository; temp files are removed on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"
FIX=/work/bench-data/2g RUNS=3
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    *) echo "usage: $0 [FIXTURE_DIR] [--runs N]" >&2; exit 2;;
  esac
done
# shellcheck disable=SC1091
. "$FIX/fixture.env"
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh" # median
ISO=$FIX/$NAME.iso
TREE="$FIX/mirror//"
[ -f "$ISO" ] && [ -d "$FIX/mirror" ] || { echo "bench: $ISO or $FIX/mirror missing (run make-fixture.sh)" >&2; exit 1; }
[ -x "$REPO/dist/app/main.js" ] || [ -f "$REPO/dist/app/main.js" ] || { echo "bench: build first (npm run build)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-mktpl.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; image $(stat -c %s "$ISO") bytes"

# timed NAME CMD...: runs CMD under /usr/bin/time -v; appends "wall cpu rss_mb" to $W/NAME.runs
timed() {
  local name=$1; shift
  /usr/bin/time -v -o "$W/time.txt" "$@" > "$W/out.txt" 2> "$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
  awk -v name="$name" '
    /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /User time/ { cpu += $NF } /System time/ { cpu += $NF }
    /Maximum resident set size/ { rss = $NF / 1024 }
    END { printf "%.2f %.2f %.0f\n", wall, cpu, rss }' "$W/time.txt" >> "$W/$name.runs"
  echo "  $name: $(tail -1 "$W/$name.runs")  (wall s, CPU s, peak RSS MB)"
}

ours() { echo "$JIGDOFS" make-template "$ISO" "$TREE" -j "$W/$1.jigdo" -t "$W/$1.template" --cache-dir "$W/cache" --force -q; }
THEIRS=(jigdo-file make-template --force --report=quiet --cache="$W/jf-cache.db" --image="$ISO" --jigdo="$W/jf.jigdo" --template="$W/jf.template" "$TREE")

echo "first runs (fill the caches):"
"$JIGDOFS" make-template "$ISO" "$TREE" -j "$W/first.jigdo" -t "$W/first.template" --cache-dir "$W/cache" --force | sed 's/^/  jigdofs: /'
"$JIGDOFS" make-template "$ISO" "$TREE" -j "$W/second.jigdo" -t "$W/second.template" --cache-dir "$W/cache" --force | sed 's/^/  jigdofs again: /'
"${THEIRS[@]}"
for r in $(seq 1 "$RUNS"); do
  echo "round $r:"
  # shellcheck disable=SC2046 # the paths have no blanks (mktemp, the fixture's)
  timed iso $(ours iso)
  # shellcheck disable=SC2046
  timed generic $(ours generic) --no-iso
  timed jigdo-file "${THEIRS[@]}"
done

col() { awk -v c="$2" '{ print $c }' "$W/$1.runs" | median; }
jf_wall=$(col jigdo-file 1)
ls_of() { jigdo-file ls --template="$1" | grep -v '^image-info'; }
ls_of "$W/jf.template" > "$W/jf.ls"
echo
echo "| configuration | wall s (median of $RUNS) | CPU s | peak RSS MB | speed-up vs jigdo-file | template bytes | parts | same parts as jigdo-file |"
echo "|---|---|---|---|---|---|---|---|"
for c in iso generic jigdo-file; do
  if [ "$c" = jigdo-file ]; then t=$W/jf.template; else t=$W/$c.template; fi
  ls_of "$t" > "$W/$c.ls"
  same=$(cmp -s "$W/$c.ls" "$W/jf.ls" && echo yes || echo "NO ($(diff "$W/$c.ls" "$W/jf.ls" | grep -c '^[<>]') lines differ)")
  parts=$(grep -c '^need-file' "$W/$c.ls")
  w=$(col "$c" 1)
  echo "| $c | $w | $(col "$c" 2) | $(col "$c" 3) | $(awk -v a="$jf_wall" -v b="$w" 'BEGIN { printf "%.1f×", a / b }') | $(stat -c %s "$t") | $parts | $same |"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
