#!/usr/bin/env bash
# bench-make-image.sh — `jigdofs make-image` vs `jigdo-file make-image` on the same .jigdo, template and
# parts, writing to the same disk, side by side in the same run; every output's checksum is checked
# against the fixture's MD5SUMS.
#
# Usage:  scripts/bench-make-image.sh [FIXTURE_DIR] [options]
#   FIXTURE_DIR          made by scripts/make-fixture.sh (default /work/bench-data/2g; built with
#                        `make-fixture.sh $FIXTURE_SIZE FIXTURE_DIR` if it has no fixture.env, FIXTURE_SIZE
#                        defaulting to 2G)
#   --runs N             rounds (default 3); the table shows medians, every raw run is printed too
#   --variant V          md5 (default) | sha256 | bz2: which .jigdo/.template of the fixture
#   --source S           local (default: --local LABEL=MIRROR, LABEL from the .jigdo's [Servers]) | scan
#   --out-dir DIR        where both tools write their image (default: a temp dir under ${TMPDIR:-/tmp})
#   --drop-caches M      auto (default: when /proc/sys/vm/drop_caches is writable) | yes | no: also time
#                        both tools with an empty page cache (warm hash caches, parts read from disk)
#   --jigdo-file-cache M fresh (default): jigdo-file gets a new --cache db for every run | keep: the db of
#                        the round's first run is reused. jigdo-file 0.8.0 with a reused db fails on the
#                        make-fixture.sh fixtures: it writes only one of the two copies of the part that
#                        the image holds twice ("Found 1550 of the 1551 files required", exit 1, IMG.tmp
#                        left); its db only spares re-reading each file's first block anyway.
#
# Configurations, each round (the order of the two tools alternates between rounds):
#   cold   jigdofs with an empty --cache-dir (it hashes every part before trusting it);
#          jigdo-file with a new --cache db (it scans every part)
#   warm   jigdofs again with the cache dir the cold run left, jigdo-file again (its db: see
#          --jigdo-file-cache); parts and template in the page cache
#   disk   (with drop caches) as warm, after `sync; echo 3 > /proc/sys/vm/drop_caches` before each tool
# Time is wall time of the whole command (bash `time`), CPU is user+sys of it and its children.
# jigdofs fsyncs its output before renaming it into place; jigdo-file does not: the "+fsync" column adds
# the time of `sync FILE` right after each command (the tool's output made durable), for a like-for-like
# comparison. Nothing is written into the repository; temp files are removed on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"

FIX=/work/bench-data/2g RUNS=3 VARIANT=md5 SOURCE=local OUT_DIR="" DROP=auto JF_CACHE=fresh
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --variant) VARIANT=$2; shift 2;;
    --source) SOURCE=$2; shift 2;;
    --out-dir) OUT_DIR=$2; shift 2;;
    --drop-caches) DROP=$2; shift 2;;
    --jigdo-file-cache) JF_CACHE=$2; shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-make-image: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")

# ------------------------------------------------------------------ fixture, build, tools
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
ensure_fixture
for t in jigdo-file md5sum node awk; do command -v $t > /dev/null || { echo "bench: missing $t" >&2; exit 1; }; done
[ -f "$REPO/dist/app/main.js" ] || (cd "$REPO" && npm run build >&2)

load_fixture "$VARIANT"
source_args "$SOURCE"
resolve_drop

# ------------------------------------------------------------------ temp space, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-make-image.XXXXXX")
if [ -n "$OUT_DIR" ]; then mkdir -p "$OUT_DIR"; OUT=$(mktemp -d "$OUT_DIR/bench-make-image.XXXXXX"); else OUT=$TMP/out; mkdir -p "$OUT"; fi
cleanup() {
  local rc=$?
  rm -rf "$TMP" "$OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ measuring
RAW=$TMP/raw.tsv   # round config tool real cpu fsync md5ok
: > "$RAW"
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
prewarm() { find "$MIRROR" -type f -exec cat {} + > /dev/null; cat "$TEMPLATE" "$JIGDO" > /dev/null; }

# run_tool ROUND CONFIG TOOL CACHE: one timed make-image, then fsync time and md5 check (untimed)
run_tool() {
  local round=$1 config=$2 tool=$3 cache=$4 img=$OUT/$tool.iso log=$TMP/$tool.log
  rm -f "$img" "$img.tmp"
  [ "$tool" = jigdo-file ] && [ "$JF_CACHE" = fresh ] && rm -f "$cache"
  [ "$config" = disk ] && drop_caches
  local cmd
  if [ "$tool" = jigdofs ]; then
    cmd=("$JIGDOFS" make-image "$JIGDO" -o "$img" --template "$TEMPLATE" "${SRC_ARGS[@]}" --cache-dir "$cache")
  else
    cmd=(jigdo-file make-image -r quiet --cache="$cache" --image="$img" --jigdo="$JIGDO" --template="$TEMPLATE" "$MIRROR")
  fi
  printf '%s\n' "${cmd[*]}" | sed "s|$TMP|\$TMP|g; s|$OUT|\$OUT|g" > "$TMP/cmd.$tool.$config"
  local TIMEFORMAT='%R %U %S' t
  local rc=0
  t=$( { time "${cmd[@]}" > "$log" 2>&1; } 2>&1 ) || rc=$?
  t=$(tail -n 1 <<< "$t")
  local fs=0 ok
  if [ $rc != 0 ] || [ ! -f "$img" ]; then
    [ "$tool" = jigdofs ] && { echo "bench: jigdofs failed ($config, round $round):" >&2; cat "$log" >&2; exit 1; }
    ok="FAILED(rc=$rc)"
    echo "  $tool failed ($config, round $round): $(tail -n 2 "$log" | tr '\n' ' ')"
  else
    fs=$( { time sync "$img"; } 2>&1 ); fs=${fs%% *}
    local sum; sum=$(md5sum < "$img"); sum=${sum%% *}
    ok=OK; [ "$sum" = "$EXPECT" ] || ok="BAD($sum)"
  fi
  read -r real user sys <<< "$t"
  local cpu; cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$tool" "$real" "$cpu" "$fs" "$ok" >> "$RAW"
  printf '  round %s %-5s %-10s %7.2f s  %7.1f MB/s  cpu %6.2f s  fsync %5.2f s  md5 %s\n' "$round" "$config" "$tool" "$real" \
    "$(awk -v b="$ISO_BYTES" -v t="$real" 'BEGIN { print b / 1e6 / t }')" "$cpu" "$fs" "$ok"
  rm -f "$img" "$img.tmp"
  sync
}

echo "bench-make-image: fixture $FIX ($NAME, $ISO_BYTES bytes, variant $VARIANT), source $SOURCE, $RUNS rounds, drop caches: $DROP, jigdo-file db: $JF_CACHE"
echo "  machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), node $(node --version), $(jigdo-file --version 2>&1 | head -1)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: compare only within this run)"
prewarm
for round in $(seq 1 "$RUNS"); do
  jf_db=$TMP/jigdo-file-cache.$round.db jd_cache=$TMP/jigdofs-cache.$round
  order=(jigdofs jigdo-file); [ $((round % 2)) = 0 ] && order=(jigdo-file jigdofs)
  configs=(cold warm); [ "$DROP" = yes ] && configs+=(disk)
  for config in "${configs[@]}"; do
    [ "$config" = disk ] || prewarm
    for tool in "${order[@]}"; do
      if [ "$tool" = jigdofs ]; then run_tool "$round" "$config" jigdofs "$jd_cache"
      else run_tool "$round" "$config" jigdo-file "$jf_db"; fi
    done
  done
  rm -rf "$jd_cache" "$jf_db"
done

# ------------------------------------------------------------------ results
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## make-image: $NAME ($VARIANT, $ISO_BYTES bytes), $RUNS rounds, medians"
echo "commands (\$TMP, \$OUT: temp dirs; the cache dir and db are per round):"
for f in "$TMP"/cmd.*; do sed 's/^/  /' "$f"; done | sort -u
echo
awk -F'\t' -v bytes="$ISO_BYTES" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { k = $2 SUBSEP $3; real[k] = real[k] " " $4; cpu[k] = cpu[k] " " $5; dur[k] = dur[k] " " ($4 + $6)
    if ($7 != "OK") bad[k] = 1; seen[$2] = 1 }
  END {
    printf "| config | tool | wall s | MB/s | CPU s | wall+fsync s | md5 | runs (wall s) |\n|---|---|---|---|---|---|---|---|\n"
    nc = split("cold warm disk", cs, " ")
    for (c = 1; c <= nc; c++) {
      if (!(cs[c] in seen)) continue
      for (t = 1; t <= 2; t++) {
        tool = t == 1 ? "jigdofs" : "jigdo-file"; k = cs[c] SUBSEP tool
        m[k] = median(real[k]); md[k] = median(dur[k])
        ok = "OK"; if (k in bad) ok = "NOT OK (see raw runs)"
        printf "| %s | %s | %.2f | %.0f | %.2f | %.2f | %s | %s |\n", cs[c], tool, m[k], bytes / 1e6 / m[k], median(cpu[k]), md[k], ok, substr(real[k], 2)
      }
    }
    printf "\n| config | jigdo-file / jigdofs (wall) | (wall+fsync) | goal >= 5x |\n|---|---|---|---|\n"
    for (c = 1; c <= nc; c++) {
      if (!(cs[c] in seen)) continue
      a = cs[c] SUBSEP "jigdofs"; b = cs[c] SUBSEP "jigdo-file"
      goal = "NOT met"; if (m[b] / m[a] >= 5) goal = "met"
      printf "| %s | %.2fx | %.2fx | %s |\n", cs[c], m[b] / m[a], md[b] / md[a], goal
    }
  }' "$RAW"
echo
echo "raw runs (round config tool wall_s cpu_s fsync_s md5):"
sed 's/^/  /' "$RAW"
