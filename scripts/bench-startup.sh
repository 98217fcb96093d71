#!/usr/bin/env bash
# bench-startup.sh — issue 11 item 5: how long `jigdofs mount` takes to return (the image visible with its full
# size) and how long `jigdofs info` takes, medians of several rounds, optionally alternated with another checkout.
#
# Usage:  scripts/bench-startup.sh [FIXTURE_DIR] [--runs N] [--compare OTHER_REPO] [--make-template-files N]
#   FIXTURE_DIR        made by scripts/make-fixture.sh (default /work/bench-data/2g; built if missing, as in the
#                      other bench scripts); every part local (--local LABEL=MIRROR), the template beside the .jigdo
#   --runs N           rounds (default 7); each round runs every command once per checkout, alternating
#   --compare DIR      another built checkout (its bin/jigdofs) measured in the same rounds, e.g. a
#                      `git worktree` of an older commit, for a side-by-side before/after
#   --make-template-files N  also the rows after a make-template (a release engineer's cache): each checkout's own
#                      `make-template` over a tree of N small files (untimed) into a new cache dir, then two mounts
#                      with that cache dir (the first after it, and the one after that)
# Rows: mount with a warm cache dir (an earlier mount's), mount with an empty cache dir, info. Wall time by
# `date +%s%N` around the command (mount returns once the kernel serves the image file, see cli/commands/mount.ts).
# Goals: mount <= 0.5 s, info <= 0.3 s. Mounts and temp dirs are removed on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FIX=/work/bench-data/2g RUNS=7 OTHER="" MT_FILES=0
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --compare) OTHER=$(realpath "$2"); shift 2;;
    --make-template-files) MT_FILES=$2; shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-startup: unknown option $1" >&2; exit 2;;
  esac
done
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
ensure_fixture
load_fixture md5  # JIGDO TEMPLATE LABEL
source_args local # SRC_ARGS
[ -f "$REPO/dist/app/main.js" ] || (cd "$REPO" && npm run build >&2)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-startup.XXXXXX")
MNT=$TMP/mnt
mkdir -p "$MNT"
cleanup() {
  awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts && fusermount -uz "$MNT" 2> /dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ms() { local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
# one_round TREE TAG ROUND: appends "TAG row ms" lines to $TMP/times
one_round() {
  local j=$1/bin/jigdofs tag=$2 round=$3 args
  args=("$JIGDO" "$MNT" --template "$TEMPLATE" "${SRC_ARGS[@]}" -q)
  echo "$tag mount-empty $(ms "$j" mount "${args[@]}" --cache-dir "$TMP/cache-$tag-$round")" >> "$TMP/times"
  "$j" umount "$MNT"
  echo "$tag mount-warm $(ms "$j" mount "${args[@]}" --cache-dir "$TMP/cache-$tag-$round")" >> "$TMP/times"
  "$j" umount "$MNT"
  echo "$tag info $(ms "$j" info "$JIGDO" --template "$TEMPLATE" "${SRC_ARGS[@]}" --cache-dir "$TMP/cache-$tag-$round")" >> "$TMP/times"
  [ "$MT_FILES" -gt 0 ] || return 0
  (cd "$TMP/mt" && "$j" make-template img.bin tree// -j out.jigdo -t out.template --force --cache-dir "$TMP/mt-cache-$tag-$round" -q > /dev/null)
  echo "$tag mount-after-make-template $(ms "$j" mount "${args[@]}" --cache-dir "$TMP/mt-cache-$tag-$round")" >> "$TMP/times"
  "$j" umount "$MNT"
  echo "$tag mount-after-make-template-2 $(ms "$j" mount "${args[@]}" --cache-dir "$TMP/mt-cache-$tag-$round")" >> "$TMP/times"
  "$j" umount "$MNT"
}

if [ "$MT_FILES" -gt 0 ]; then # the tree of bench-make-template-tree.sh: N files of 1,100 random bytes, every tenth in the image
  mkdir -p "$TMP/mt"
  small_file_tree "$TMP/mt" "$MT_FILES"
fi

echo "bench-startup: $NAME, $RUNS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  one_round "$REPO" this "$r"
  [ -n "$OTHER" ] && one_round "$OTHER" other "$r"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| checkout | row | median ms | runs ms |\n|---|---|---|---|\n'
for tag in this other; do
  for row in mount-warm mount-empty info mount-after-make-template mount-after-make-template-2; do
    vals=$(awk -v t=$tag -v r=$row '$1 == t && $2 == r { print $3 }' "$TMP/times" | sort -n | tr '\n' ' ')
    [ -z "$vals" ] && continue
    med=$(echo "$vals" | tr ' ' '\n' | grep . | median)
    echo "| $([ $tag = this ] && echo "$REPO" || echo "$OTHER") | $row | $med | $vals|"
  done
done
