#!/usr/bin/env bash
# bench-serve-ranges.sh — many parallel ranged clients on one `jigdofs serve`, the reader alone: parts are
# local (--local Debian=FIXTURE/mirror), so neither a mirror nor the network is measured. Prints, for one
# server: the wall time of 8 `curl -r` clients at once (one eighth of the image each), then of one curl of
# the whole image, as MB/s, and the server's CPU seconds in all. A first whole curl (untimed) hashes the
# parts once, so both timed runs find them located.
#
# Usage:  scripts/bench-serve-ranges.sh [JIGDOFS_BIN] [FIXTURE_DIR]
#   JIGDOFS_BIN   default: this checkout's bin/jigdofs (another checkout's, to compare two versions)
#   FIXTURE_DIR   made by scripts/make-fixture.sh (default /work/bench-data/2g)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${1:-$HERE/../bin/jigdofs}
FIX=${2:-/work/bench-data/2g}
# shellcheck disable=SC1091
. "$FIX/fixture.env"
D=$(mktemp -d)
trap 'kill "$SP" 2> /dev/null; wait "$SP" 2> /dev/null; rm -rf "$D"' EXIT
node "$BIN" serve "$FIX/$NAME.jigdo" --local "Debian=$FIX/mirror" --cache-dir "$D/cache" --port 0 > "$D/log" 2>&1 &
SP=$!
for _ in $(seq 300); do grep -q serving "$D/log" && break; sleep 0.1; done
URL=$(grep -o 'http://[^ ]*' "$D/log" | head -1)
SIZE=$ISO_BYTES N=8 P=()
PART=$((SIZE / N))
curl -s -o /dev/null "$URL"
t0=$(date +%s.%N)
for i in $(seq 0 $((N - 1))); do
  s=$((i * PART)); e=$((i == N - 1 ? SIZE - 1 : (i + 1) * PART - 1))
  curl -s -r "$s-$e" -o /dev/null "$URL" & P+=($!)
done
wait "${P[@]}"
t1=$(date +%s.%N)
curl -s -o /dev/null "$URL"
t2=$(date +%s.%N)
cpu=$(awk '{ print ($14 + $15) / 100 }' "/proc/$SP/stat")
echo "$N ranges at once: $(echo "$SIZE / ($t1 - $t0) / 1000000" | bc -l | xargs printf '%.0f') MB/s; 1 curl: $(echo "$SIZE / ($t2 - $t1) / 1000000" | bc -l | xargs printf '%.0f') MB/s; server CPU in all: $cpu s ($BIN)"
