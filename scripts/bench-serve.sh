#!/usr/bin/env bash
# bench-serve.sh — `jigdofs serve` vs the mount, side by side in one run (issue 12 item 5): parts come from
# nginx on 127.0.0.1 serving the fixture's mirror (as a LAN mirror would), each client writes the image to
# a file in the same folder.
#
# Usage:  scripts/bench-serve.sh [FIXTURE_DIR] [--runs N] [--variant md5|sha256|bz2] [--out-dir DIR]
#   FIXTURE_DIR   made by scripts/make-fixture.sh (default /work/bench-data/2g)
#
# Each round (medians of the rounds are shown; every raw value is printed too):
#   serve, empty cache   new --cache-dir: `curl -o FILE http://127.0.0.1:P/IMAGE` (parts fetched from nginx)
#   mount, empty cache   new --cache-dir: `cp MNT/IMAGE FILE`
#   serve, warm cache    a new server on the cache the first one filled: curl again
#   mount, warm cache    a new mount on that cache: cp again
#   serve, 8 clients     8 curl processes at once on the warm server, each `curl -r` one eighth of the image
#                        (aria2c -x8 was tried: it opens ranges it later abandons, see BENCHMARKS.md)
# Throughput is image bytes / wall seconds; CPU is the server's or mount daemon's user+system time
# (/proc/PID/stat) per GB sent. Every copy is checked against the image's MD5 (untimed).
# Goal (issue 12): one curl client >= the mount's cp.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"
FIX=/work/bench-data/2g RUNS=3 VARIANT=md5 OUT_DIR=""
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --variant) VARIANT=$2; shift 2;;
    --out-dir) OUT_DIR=$2; shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-serve: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
ensure_fixture
for t in nginx curl md5sum node fusermount; do command -v $t > /dev/null || { echo "bench: missing $t (scripts/setup.sh installs it)" >&2; exit 1; }; done
[ -f "$REPO/dist/app/main.js" ] || (cd "$REPO" && npm run build >&2)
load_fixture "$VARIANT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-serve.XXXXXX")
if [ -n "$OUT_DIR" ]; then mkdir -p "$OUT_DIR"; OUT=$(mktemp -d "$OUT_DIR/bench-serve.XXXXXX"); else OUT=$TMP/out; mkdir -p "$OUT"; fi
MNT=$TMP/mnt; mkdir -p "$MNT" "$TMP/nginx"
PIDS=()
mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  mounted "$MNT" && { "$JIGDOFS" umount "$MNT" > /dev/null 2>&1 || fusermount -uz "$MNT" 2> /dev/null || true; }
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  rm -rf "$TMP" "$OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_nginx "$TMP"; PIDS+=("$NGINX_PID"); NPORT=$NGINX_PORT
SRC=(--template "$TEMPLATE" --mirror "$LABEL=http://127.0.0.1:$NPORT/")

RAW=$TMP/raw.tsv; : > "$RAW"
note() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RAW"; printf '  round %s  %-26s %s\n' "$1" "$2" "$3"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
cpu_per_gb() { awk -v d="$1" -v hz="$HZ" -v b="$ISO_BYTES" 'BEGIN { printf "%.2f", d / hz / (b / 1e9) }'; }
mbs() { awk -v b="$ISO_BYTES" -v t="$1" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
check() { local s; s=$(md5sum < "$1"); s=${s%% *}; [ "$s" = "$EXPECT" ] && echo OK || { echo "bench: BAD copy $1 ($s)" >&2; exit 1; }; }

SPID="" SURL=""
serve_start() {  # serve_start CACHE
  rm -f "$TMP/serve.log"   # never read the previous server's port
  "$JIGDOFS" serve "$JIGDO" "${SRC[@]}" --cache-dir "$1" --port 0 2> "$TMP/serve.log" &
  SPID=$!; PIDS+=("$SPID")
  for _ in $(seq 300); do grep -q 'serving http' "$TMP/serve.log" && break; sleep 0.1; done
  SURL=$(grep -o 'http://127.0.0.1:[0-9]*/[^ ]*' "$TMP/serve.log" | head -1)
  [ -n "$SURL" ] || { cat "$TMP/serve.log" >&2; exit 1; }
}
serve_stop() { kill -TERM "$SPID"; wait "$SPID" 2> /dev/null || true; }
DPID=""
mount_start() {
  "$JIGDOFS" mount "$JIGDO" "$MNT" "${SRC[@]}" --cache-dir "$1" > /dev/null
  DPID=$(daemon_pid "$JIGDOFS" "$MNT")
  PIDS+=("$DPID")
}
mount_stop() {
  # umount can report a fusermount error although the daemon did unmount: what counts is /proc/mounts
  for _ in 1 2 3 4 5; do "$JIGDOFS" umount "$MNT" 2> /dev/null || true; mounted "$MNT" || break; sleep 1; done
  for _ in $(seq 100); do kill -0 "$DPID" 2> /dev/null || return 0; sleep 0.1; done; }
curl_ranges() {  # curl_ranges N URL FILE: N curls at once, each one range, written in place into FILE
  local n=$1 url=$2 file=$3 i pids=()
  truncate -s "$ISO_BYTES" "$file"
  for i in $(seq 0 $((n - 1))); do
    local a=$((ISO_BYTES * i / n)) b=$((ISO_BYTES * (i + 1) / n - 1))
    curl -sS -r "$a-$b" "$url" | dd of="$file" bs=1M seek="$a" oflag=seek_bytes conv=notrunc status=none & pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || return 1; done
}
run_client() {  # run_client ROUND KEY PID CMD...: wall time, CPU of PID, md5 of $OUT/copy.iso
  local round=$1 key=$2 pid=$3; shift 3
  local c0 t0; c0=$(ticks "$pid"); t0=$(now)
  "$@" > "$TMP/client.log" 2>&1 || { echo "bench: failed: $*" >&2; cat "$TMP/client.log" >&2; exit 1; }
  local t; t=$(since "$t0")
  note "$round" "${key}_mbs" "$(mbs "$t")"
  note "$round" "${key}_cpu_s_per_gb" "$(cpu_per_gb $(( $(ticks "$pid") - c0 )))"
  check "$OUT/copy.iso" > /dev/null; rm -f "$OUT/copy.iso"; sync
}

echo "bench-serve: fixture $FIX ($NAME, $ISO_BYTES bytes, variant $VARIANT), parts from nginx on 127.0.0.1:$NPORT, $RUNS rounds"
echo "  machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, node $(node --version), $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
find "$MIRROR" -type f -exec cat {} + > /dev/null   # the parts in the page cache, for every side alike
for round in $(seq 1 "$RUNS"); do
  scache=$TMP/scache.$round mcache=$TMP/mcache.$round
  serve_start "$scache"
  run_client "$round" serve_cold "$SPID" curl -sS -o "$OUT/copy.iso" "$SURL"
  serve_stop
  mount_start "$mcache"
  run_client "$round" mount_cold "$DPID" cp "$MNT/$NAME.iso" "$OUT/copy.iso"
  mount_stop
  serve_start "$scache"
  run_client "$round" serve_warm "$SPID" curl -sS -o "$OUT/copy.iso" "$SURL"
  run_client "$round" serve_curl8 "$SPID" curl_ranges 8 "$SURL" "$OUT/copy.iso"
  serve_stop
  mount_start "$mcache"
  run_client "$round" mount_warm "$DPID" cp "$MNT/$NAME.iso" "$OUT/copy.iso"
  mount_stop
  rm -rf "$scache" "$mcache"
done

med() { awk -F'\t' -v k="$1" '$2 == k { print $3 }' "$RAW" | sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
all() { awk -F'\t' -v k="$1" '$2 == k { printf "%s%s", sep, $3; sep = " " }' "$RAW"; }
echo
echo "| client | MB/s (median of $RUNS) | server CPU s per GB | all MB/s |"
echo "|---|---|---|---|"
for k in serve_cold:"serve, empty cache: 1 curl" mount_cold:"mount, empty cache: cp" serve_warm:"serve, warm cache: 1 curl" mount_warm:"mount, warm cache: cp" serve_curl8:"serve, warm cache: 8 curl ranges at once"; do
  echo "| ${k#*:} | $(med "${k%%:*}_mbs") | $(med "${k%%:*}_cpu_s_per_gb") | $(all "${k%%:*}_mbs") |"
done
