#!/usr/bin/env bash
# bench-memory.sh — peak RSS of jigdofs in every mode of issue 11 item 4: `make-image` (max RSS of the process,
# /usr/bin/time) and the mount daemon during a `cp` of the whole image (VmHWM from /proc), each with parts local
# (--local) and over HTTP (nginx on 127.0.0.1), each with an empty cache dir and with a warm one (the cache dir
# of the empty run: hash index, or every part in the disk cache). Also the CPU-seconds of each. make-image removes
# the parts it downloaded unless --keep-parts: over HTTP its empty-cache row runs both ways, the second filling the
# cache for the warm row.
#
# Usage:  scripts/bench-memory.sh [FIXTURE_DIR] [--runs N] [--memory SIZE]
#   FIXTURE_DIR   made by scripts/make-fixture.sh (default /work/bench-data/2g)
#   --runs N      rounds (default 1): peak RSS moves little between rounds; every value is printed
#   --memory SIZE passed to jigdofs (default: its own default, 128M)
# Every image written is checked against the fixture's MD5SUMS. Nothing is written into the repository.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"
FIX=/work/bench-data/2g RUNS=1 MEM=()
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --memory) MEM=(--memory "$2"); shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-memory: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
load_fixture md5
for t in nginx curl node fusermount; do command -v $t > /dev/null || { echo "bench-memory: needs $t (scripts/setup.sh installs it)" >&2; exit 1; }; done
[ -f "$REPO/dist/app/main.js" ] || (cd "$REPO" && npm run build --silent)

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-memory.XXXXXX")
NGINX_PID=""
cleanup() {
  [ -d "$W/mnt" ] && { "$JIGDOFS" umount "$W/mnt" > /dev/null 2>&1 || fusermount -uz "$W/mnt" 2> /dev/null || true; }
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/nginx" "$W/mnt"
PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
cat > "$W/nginx/nginx.conf" << NGX
daemon off; worker_processes 2; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log;
events {}
http {
  access_log off; sendfile on; client_body_temp_path $W/nginx; proxy_temp_path $W/nginx;
  fastcgi_temp_path $W/nginx; uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
  server { listen 127.0.0.1:$PORT; root $MIRROR; }
}
NGX
nginx -c "$W/nginx/nginx.conf" & NGINX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
TICK=$(getconf CLK_TCK)
check() { [ "$(md5sum "$1" | cut -d' ' -f1)" = "$EXPECT" ] || { echo "bench-memory: $2 wrote a wrong image" >&2; exit 1; }; }

src_args() { # local | http
  if [ "$1" = local ]; then SRC=(--template "$TEMPLATE" --local "$LABEL=$MIRROR"); else SRC=(--template "$TEMPLATE" --mirror "$LABEL=http://127.0.0.1:$PORT/"); fi
}
make_image() { # SRC CACHE [ARG...] -> "maxrss_MB cpu_s"
  src_args "$1"
  /usr/bin/time -f "%M %U %S" -o "$W/time" "$JIGDOFS" make-image "$JIGDO" -o "$W/out.iso" --cache-dir "$2" -q "${SRC[@]}" "${MEM[@]}" "${@:3}"
  check "$W/out.iso" make-image; rm -f "$W/out.iso"
  awk '{ printf "%.1f %.1f\n", $1 / 1024, $2 + $3 }' "$W/time"
}
mount_cp() { # SRC CACHE -> "hwm_MB daemon_cpu_s"
  src_args "$1"
  "$JIGDOFS" mount "$JIGDO" "$W/mnt" --cache-dir "$2" -q "${SRC[@]}" "${MEM[@]}"
  local pid; pid=$(daemon_pid "$JIGDOFS" "$W/mnt")
  cp "$W/mnt/$NAME.iso" "$W/out.iso"
  local hwm cpu
  hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  cpu=$(awk -v t="$TICK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$pid/stat")
  "$JIGDOFS" umount "$W/mnt" > /dev/null
  check "$W/out.iso" "mount+cp"; rm -f "$W/out.iso"
  echo "$hwm $cpu"
}

echo "bench-memory: $FIX ($NAME.iso, $ISO_BYTES bytes), ${MEM[*]:-default --memory}, $RUNS round(s); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| job | parts | cache | peak RSS MB | CPU s | round |"
echo "|---|---|---|---|---|---|"
for run in $(seq "$RUNS"); do
  for src in local http; do
    rm -rf "$W/c1" "$W/c2"
    read -r m c < <(make_image "$src" "$W/c1"); echo "| make-image | $src | empty | $m | $c | $run |"
    if [ "$src" = http ]; then read -r m c < <(make_image "$src" "$W/c1" --keep-parts); echo "| make-image --keep-parts | $src | empty | $m | $c | $run |"; fi
    read -r m c < <(make_image "$src" "$W/c1"); echo "| make-image | $src | warm | $m | $c | $run |"
    read -r m c < <(mount_cp "$src" "$W/c2"); echo "| mount + cp (daemon) | $src | empty | $m | $c | $run |"
    read -r m c < <(mount_cp "$src" "$W/c2"); echo "| mount + cp (daemon) | $src | warm | $m | $c | $run |"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
