#!/usr/bin/env bash
# bench-mount.sh — the mounted image with every part local: mount time, `cp` of the image vs
# `jigdo-file make-image`, sequential and 4 KiB random reads vs a trivial fuse-native file served from
# memory (scripts/trivial-fuse.mjs), and the daemon's peak RSS. Side by side in the same run.
#
# Usage:  scripts/bench-mount.sh [FIXTURE_DIR] [options]
#   FIXTURE_DIR          made by scripts/make-fixture.sh (default /work/bench-data/2g; built with
#                        `make-fixture.sh $FIXTURE_SIZE FIXTURE_DIR` if it has no fixture.env, FIXTURE_SIZE
#                        defaulting to 2G)
#   --runs N             rounds (default 3); the table shows medians, every raw value is printed too
#   --variant V          md5 (default) | sha256 | bz2: which .jigdo/.template of the fixture
#   --source S           local (default: --local LABEL=MIRROR, LABEL from the .jigdo's [Servers]) | scan
#   --memory SIZE        jigdofs --memory (default: jigdofs' own default)
#   --count N            random reads per measurement (default 2000)
#   --out-dir DIR        where cp and jigdo-file write the image (default: a temp dir under ${TMPDIR:-/tmp})
#   --drop-caches M      auto (default: when /proc/sys/vm/drop_caches is writable) | yes | no
#
# Each round (parts and template are in the page cache unless said otherwise; every "fresh mount" is a new
# mount, so none of the image's pages are cached by the kernel yet):
#   cold    mount with an empty --cache-dir, cp the image out (every part is hashed on first use), md5
#   warm    mount again with that cache dir: (a) mount time = `jigdofs mount` until it returns;
#           (b) cp time; (e) VmHWM of the daemon after the cp; md5 of the copy;
#           (c) "again": dd of the image a second time on that mount (kernelCache: the page cache serves it)
#   jigdo-file make-image on the same .jigdo, template and mirror: (b)'s baseline. It gets a new --cache
#       db each time: jigdo-file 0.8.0 with a reused db fails on the make-fixture.sh fixtures (it writes
#       only one of the two copies of the part the image holds twice: "Found 1550 of the 1551 files
#       required", exit 1); the db only spares it re-reading each file's first block anyway
#   (c) "fresh": dd bs=1M on a fresh mount, jigdofs and trivial-fuse (same size, same mount options)
#   (c) "disk": same after `sync; echo 3 > /proc/sys/vm/drop_caches` (jigdofs reads the parts from disk,
#       trivial-fuse still answers from memory)
#   direct  the cold and warm cp again with `mount --direct-io` (reads bypass the page cache; own cache dir
#           for its cold run), then on that warm mount and on default ones: (f) md5sum of the image (32 KiB
#           reads) and dd of its first 100 MB in 512-byte blocks, the small reads --direct-io makes slower.
#           The default mount is a new one for each (the page cache would serve the second from the first's
#           pages); the direct mount keeps no pages, so one serves both
#   (d) 2000 preads of 4 KiB at the same random 4 KiB-aligned offsets (each one goes to the daemon, with
#       the kernel's read-ahead), jigdofs and trivial-fuse: p50/p99 in µs. "warm": on the warm mount after
#       the cp and the second dd (the daemon has served every byte once: parts located and open, template
#       data inflated), the image's own pages dropped first with `dd if=IMAGE iflag=nocache count=0`;
#       "fresh mount": a new mount (the daemon has served nothing yet; parts still in the page cache)
# Goals (from the issue): cp >= 8x faster than jigdo-file; sequential >= 80% of trivial-fuse; RSS <= 200 MB.
# Mounts, processes and temp files are removed on exit; nothing is written into the repository.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"

FIX=/work/bench-data/2g RUNS=3 VARIANT=md5 SOURCE=local OUT_DIR="" DROP=auto COUNT=2000 MEMORY=""
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --variant) VARIANT=$2; shift 2;;
    --source) SOURCE=$2; shift 2;;
    --memory) MEMORY=$2; shift 2;;
    --count) COUNT=$2; shift 2;;
    --out-dir) OUT_DIR=$2; shift 2;;
    --drop-caches) DROP=$2; shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-mount: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")

# ------------------------------------------------------------------ fixture, build, tools
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
ensure_fixture
for t in jigdo-file md5sum node awk dd fusermount; do command -v $t > /dev/null || { echo "bench: missing $t" >&2; exit 1; }; done
[ -f "$REPO/dist/app/main.js" ] || (cd "$REPO" && npm run build >&2)

load_fixture "$VARIANT"
source_args "$SOURCE"
[ -n "$MEMORY" ] && SRC_ARGS+=(--memory "$MEMORY")
resolve_drop

# ------------------------------------------------------------------ temp space, cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-mount.XXXXXX")
if [ -n "$OUT_DIR" ]; then mkdir -p "$OUT_DIR"; OUT=$(mktemp -d "$OUT_DIR/bench-mount.XXXXXX"); else OUT=$TMP/out; mkdir -p "$OUT"; fi
MNT=$TMP/mnt TMNT=$TMP/tmnt
mkdir -p "$MNT" "$TMNT"
PIDS=()   # processes this script started (jigdofs daemons, trivial-fuse)
mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if mounted "$MNT"; then "$JIGDOFS" umount "$MNT" > /dev/null 2>&1 || fusermount -uz "$MNT" 2> /dev/null || true; fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  sleep 0.3
  for m in "$MNT" "$TMNT"; do mounted "$m" && { fusermount -uz "$m" 2> /dev/null || true; }; done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  rm -rf "$TMP" "$OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RAW=$TMP/raw.tsv   # round key value
: > "$RAW"
CMDS=$TMP/commands
: > "$CMDS"
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RAW"; printf '  round %s  %-28s %s\n' "$1" "$2" "$3"; }
cmdline() { printf '%s\n' "$*" | sed "s|$TMP|\$TMP|g; s|$OUT|\$OUT|g" >> "$CMDS"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
prewarm() { find "$MIRROR" -type f -exec cat {} + > /dev/null; cat "$TEMPLATE" "$JIGDO" > /dev/null; }
# seconds of wall time of a command (its output to $TMP/last.log)
timed() {
  local TIMEFORMAT='%R' t
  if ! t=$( { time "$@" > "$TMP/last.log" 2>&1; } 2>&1 ); then
    echo "bench: failed: $*" >&2; cat "$TMP/last.log" >&2; exit 1
  fi
  echo "$t"
}
mbs() { awk -v b="$ISO_BYTES" -v t="$1" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# ------------------------------------------------------------------ jigdofs and trivial-fuse mounts
IMG=$MNT/$NAME.iso TIMG=$TMNT/$NAME.iso DPID=""
MOUNT_T=""
jd_mount() {  # jd_mount CACHE_DIR [ARG...]: sets MOUNT_T (seconds) and DPID (not in a subshell: they are globals)
  local cmd=("$JIGDOFS" mount "$JIGDO" "$MNT" --template "$TEMPLATE" "${SRC_ARGS[@]}" --cache-dir "$@")
  cmdline "${cmd[@]}"
  MOUNT_T=$(timed "${cmd[@]}")
  DPID=$(daemon_pid "$JIGDOFS" "$MNT")
  PIDS+=("$DPID")
  [ -f "$IMG" ] || { echo "bench: $IMG is not there after mount" >&2; exit 1; }
}
jd_umount() {
  "$JIGDOFS" umount "$MNT"
  for _ in $(seq 100); do kill -0 "$DPID" 2> /dev/null || return 0; sleep 0.1; done
  echo "bench: daemon $DPID still alive 10 s after umount" >&2
}
TPID=""
tf_mount() {
  cmdline node "$HERE/trivial-fuse.mjs" "$TMNT" "$ISO_BYTES" --name "$NAME.iso"
  node "$HERE/trivial-fuse.mjs" "$TMNT" "$ISO_BYTES" --name "$NAME.iso" > "$TMP/trivial.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  for _ in $(seq 200); do [ -f "$TIMG" ] && return 0; kill -0 "$TPID" 2> /dev/null || break; sleep 0.05; done
  echo "bench: trivial-fuse did not mount:" >&2; cat "$TMP/trivial.log" >&2; exit 1
}
tf_umount() {
  kill -TERM "$TPID"
  wait "$TPID" 2> /dev/null || true
  mounted "$TMNT" && fusermount -uz "$TMNT"
  return 0
}
seq_read() { timed dd if="$1" of=/dev/null bs=1M; }   # seconds
drop_file_cache() { dd if="$1" iflag=nocache count=0 status=none; }   # this file's pages only (fadvise DONTNEED)
rand_read() {  # rand_read FILE ROUND SUBJECT
  cmdline node "$HERE/rand-read.mjs" "$1" --count "$COUNT" --block 4096 --seed 1
  local line; line=$(node "$HERE/rand-read.mjs" "$1" --count "$COUNT" --block 4096 --seed 1)
  note "$2" "rand_p50_us_$3" "$(echo "$line" | awk '{ print $6 }')"
  note "$2" "rand_p99_us_$3" "$(echo "$line" | awk '{ print $10 }')"
}
check_copy() {  # md5 of a copy (untimed)
  local sum; sum=$(md5sum < "$1"); sum=${sum%% *}
  [ "$sum" = "$EXPECT" ] && echo OK || echo "BAD($sum)"
}

echo "bench-mount: fixture $FIX ($NAME, $ISO_BYTES bytes, variant $VARIANT), source $SOURCE, $RUNS rounds, drop caches: $DROP"
echo "  machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), node $(node --version), $(jigdo-file --version 2>&1 | head -1)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: compare only within this run)"
JF_DB=$TMP/jigdo-file-cache.db
JF_CMD=(jigdo-file make-image -r quiet --cache="$JF_DB" --image="$OUT/jigdo-file.iso" --jigdo="$JIGDO" --template="$TEMPLATE" "$MIRROR")
prewarm

for round in $(seq 1 "$RUNS"); do
  cache=$TMP/cache.$round
  prewarm
  # cold: empty cache dir
  jd_mount "$cache"; note "$round" mount_cold_s "$MOUNT_T"
  t=$(timed cp "$IMG" "$OUT/copy.iso"); note "$round" cp_cold_s "$t"
  note "$round" hwm_cold_mb "$(hwm_mb "$DPID")"
  note "$round" md5_cold "$(check_copy "$OUT/copy.iso")"
  jd_umount; rm -f "$OUT/copy.iso"; sync
  jd_mount "$cache.direct" --direct-io
  t=$(timed cp "$IMG" "$OUT/copy.iso"); note "$round" cp_cold_direct_s "$t"
  note "$round" md5_cold_direct "$(check_copy "$OUT/copy.iso")"
  jd_umount; rm -f "$OUT/copy.iso"; sync

  # the two sides alternate their order between rounds
  side_jigdofs() {
    jd_mount "$cache"; note "$round" mount_warm_s "$MOUNT_T"
    t=$(timed cp "$IMG" "$OUT/copy.iso"); note "$round" cp_warm_s "$t"
    note "$round" hwm_warm_mb "$(hwm_mb "$DPID")"
    note "$round" md5_warm "$(check_copy "$OUT/copy.iso")"
    rm -f "$OUT/copy.iso"; sync
    note "$round" seq_again_mbs_jigdofs "$(mbs "$(seq_read "$IMG")")"
    drop_file_cache "$IMG"
    rand_read "$IMG" "$round" warm_jigdofs
    jd_umount
    jd_mount "$cache"
    note "$round" seq_fresh_mbs_jigdofs "$(mbs "$(seq_read "$IMG")")"
    note "$round" hwm_seq_mb "$(hwm_mb "$DPID")"
    jd_umount
    jd_mount "$cache"
    rand_read "$IMG" "$round" jigdofs
    jd_umount
    jd_mount "$cache.direct" --direct-io
    t=$(timed cp "$IMG" "$OUT/copy.iso"); note "$round" cp_warm_direct_s "$t"
    note "$round" md5_warm_direct "$(check_copy "$OUT/copy.iso")"
    rm -f "$OUT/copy.iso"; sync
    note "$round" md5sum_direct_s "$(timed md5sum "$IMG")"
    note "$round" dd512_direct_s "$(timed dd if="$IMG" of=/dev/null count=200000)"
    jd_umount
    jd_mount "$cache"   # a new default mount for each small reader: see (f) in the header
    note "$round" md5sum_s "$(timed md5sum "$IMG")"
    jd_umount
    jd_mount "$cache"
    note "$round" dd512_s "$(timed dd if="$IMG" of=/dev/null count=200000)"
    jd_umount
  }
  side_trivial() {
    tf_mount
    note "$round" seq_fresh_mbs_trivial "$(mbs "$(seq_read "$TIMG")")"
    note "$round" seq_again_mbs_trivial "$(mbs "$(seq_read "$TIMG")")"
    drop_file_cache "$TIMG"
    rand_read "$TIMG" "$round" warm_trivial
    note "$round" hwm_trivial_mb "$(hwm_mb "$TPID")"
    tf_umount
    tf_mount
    rand_read "$TIMG" "$round" trivial
    tf_umount
  }
  side_jigdo_file() {
    rm -f "$OUT/jigdo-file.iso" "$JF_DB"   # a new db each time: see the header
    cmdline "${JF_CMD[@]}"
    t=$(timed "${JF_CMD[@]}"); note "$round" jigdo_file_s "$t"
    note "$round" md5_jigdo_file "$(check_copy "$OUT/jigdo-file.iso")"
    rm -f "$OUT/jigdo-file.iso"; sync
  }
  if [ $((round % 2)) = 1 ]; then side_jigdofs; side_jigdo_file; side_trivial; else side_trivial; side_jigdo_file; side_jigdofs; fi

  if [ "$DROP" = yes ]; then
    drop_caches
    jd_mount "$cache"
    note "$round" seq_disk_mbs_jigdofs "$(mbs "$(seq_read "$IMG")")"
    jd_umount
    drop_caches
    tf_mount
    note "$round" seq_disk_mbs_trivial "$(mbs "$(seq_read "$TIMG")")"
    tf_umount
  fi
  rm -rf "$cache" "$cache.direct"
done

# ------------------------------------------------------------------ results
med() {  # median of a key's values ("" if none)
  awk -F'\t' -v k="$1" '$2 == k { print $3 }' "$RAW" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
all() { awk -F'\t' -v k="$1" '$2 == k { printf "%s%s", sep, $3; sep = " " }' "$RAW"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
mbs_of() { [ -n "$1" ] && mbs "$1" || echo -; }

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## mount: $NAME ($VARIANT, $ISO_BYTES bytes), $RUNS rounds, medians"
echo "commands (\$TMP, \$OUT: temp dirs):"
sort -u "$CMDS" | sed 's/^/  /'
echo "  cp \$TMP/mnt/$NAME.iso \$OUT/copy.iso;  dd if=\$TMP/mnt/$NAME.iso of=/dev/null bs=1M  (the same dd on \$TMP/tmnt/$NAME.iso: trivial-fuse)"
echo
row "measure" "jigdofs" "baseline" "ratio" "goal" "runs (jigdofs / baseline)"
row "---" "---" "---" "---" "---" "---"
row "(a) mount, warm cache (s)" "$(med mount_warm_s)" "" "" "" "$(all mount_warm_s)"
row "(a) mount, empty cache (s)" "$(med mount_cold_s)" "" "" "" "$(all mount_cold_s)"
cpw=$(med cp_warm_s) jf=$(med jigdo_file_s)
r=$(ratio "$jf" "$cpw")
row "(b) cp, warm cache (s) vs jigdo-file make-image" "$cpw ($(mbs_of "$cpw") MB/s)" "$jf ($(mbs_of "$jf") MB/s)" "${r}x" \
  "$(awk -v r="$r" 'BEGIN { print (r + 0 >= 8 ? "met" : "NOT met") " (>= 8x)" }')" "$(all cp_warm_s) / $(all jigdo_file_s)"
cpc=$(med cp_cold_s)
row "(b) cp, empty cache (s) vs jigdo-file" "$cpc ($(mbs_of "$cpc") MB/s)" "$jf" "$(ratio "$jf" "$cpc")x" "" "$(all cp_cold_s)"
cpwd=$(med cp_warm_direct_s)
r=$(ratio "$jf" "$cpwd")
row "(b) cp, warm cache, --direct-io (s) vs jigdo-file" "$cpwd ($(mbs_of "$cpwd") MB/s)" "$jf" "${r}x" \
  "$(awk -v r="$r" 'BEGIN { print (r + 0 >= 8 ? "met" : "NOT met") " (>= 8x)" }')" "$(all cp_warm_direct_s)"
cpcd=$(med cp_cold_direct_s)
row "(b) cp, empty cache, --direct-io (s) vs jigdo-file" "$cpcd ($(mbs_of "$cpcd") MB/s)" "$jf" "$(ratio "$jf" "$cpcd")x" "" "$(all cp_cold_direct_s)"
row "(b) md5 of the copies" "warm: $(all md5_warm); cold: $(all md5_cold); --direct-io warm: $(all md5_warm_direct); cold: $(all md5_cold_direct)" "$(all md5_jigdo_file)" "" "" ""
for kind in fresh again disk; do
  a=$(med seq_${kind}_mbs_jigdofs) b=$(med seq_${kind}_mbs_trivial)
  [ -n "$a" ] || continue
  r=$(ratio "$a" "$b")
  goal=""; [ "$kind" = fresh ] && goal=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 0.8 ? "met" : "NOT met") " (>= 0.8)" }')
  row "(c) sequential, $kind (MB/s) vs trivial-fuse" "$a" "$b" "$r" "$goal" "$(all seq_${kind}_mbs_jigdofs) / $(all seq_${kind}_mbs_trivial)"
done
for kind in warm fresh; do
  for p in p50 p99; do
    if [ $kind = warm ]; then ka=rand_${p}_us_warm_jigdofs kb=rand_${p}_us_warm_trivial label=warm; else ka=rand_${p}_us_jigdofs kb=rand_${p}_us_trivial label="fresh mount"; fi
    a=$(med $ka) b=$(med $kb)
    row "(d) 4 KiB random read $p, $label (µs) vs trivial-fuse" "$a" "$b" "$(ratio "$a" "$b")" "" "$(all $ka) / $(all $kb)"
  done
done
a=$(med md5sum_direct_s) b=$(med md5sum_s)
row "(f) md5sum of the image, warm: --direct-io vs default (s)" "$a" "$b" "$(ratio "$a" "$b")" "" "$(all md5sum_direct_s) / $(all md5sum_s)"
a=$(med dd512_direct_s) b=$(med dd512_s)
row "(f) dd bs=512 of 100 MB, warm: --direct-io vs default (s)" "$a" "$b" "$(ratio "$a" "$b")" "" "$(all dd512_direct_s) / $(all dd512_s)"
h=$(med hwm_warm_mb)
row "(e) daemon VmHWM after cp, warm cache (MB)" "$h" "$(med hwm_trivial_mb) (trivial-fuse)" "" \
  "$(awk -v h="$h" 'BEGIN { print (h + 0 <= 200 ? "met" : "NOT met") " (<= 200 MB)" }')" "$(all hwm_warm_mb)"
row "(e) daemon VmHWM after cp, empty cache (MB)" "$(med hwm_cold_mb)" "" "" "" "$(all hwm_cold_mb)"
row "(e) daemon VmHWM after dd, fresh mount (MB)" "$(med hwm_seq_mb)" "" "" "" "$(all hwm_seq_mb)"
echo
echo "raw values (round key value):"
sed 's/^/  /' "$RAW"
