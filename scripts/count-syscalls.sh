#!/usr/bin/env bash
# count-syscalls.sh — what the mount daemon asks of the kernel while a reader copies part of the image: its
# file-system system calls (`strace -f -c` on the daemon) and its threads' context switches. Counts, unlike wall and
# CPU times, do not move with the load of a shared VM's host, so a change of a few calls per part shows.
#
# Usage:  scripts/count-syscalls.sh [FIXTURE_DIR] [options]
#   FIXTURE_DIR      made by scripts/make-fixture.sh (default /work/bench-data/2g)
#   --source S       http (default): parts from nginx on 127.0.0.1, empty cache (the fetch and commit path);
#                    local: --local LABEL=FIXTURE/mirror, the hash index warmed by one untraced pass (the read path)
#   --mib N          MiB read with dd bs=1M (default 512) ...
#   --skip M         ... from MiB M of the image (default 1024)
#   --runs N         rounds (default 2)
#   --compare DIR    also run DIR/bin/jigdofs (a built checkout, e.g. a git worktree of the commit before) in each
#                    round, alternated with this one
# Each run: two fresh mounts (for http each with an empty cache), a 2 MiB read elsewhere on each (so that the
# threads start before the count), then the dd: untraced on the first (context switches: strace would add its
# own), under strace on the second. Prints per run: the build, parts committed (fdatasync calls), context switches,
# and calls per system call.
# Needs strace (apt-get install strace), nginx and curl for --source http (scripts/setup.sh installs them).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")

FIX=/work/bench-data/2g SOURCE=http MIB=512 SKIP=1024 RUNS=2 COMPARE=""
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --source) SOURCE=$2; shift 2;;
    --mib) MIB=$2; shift 2;;
    --skip) SKIP=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --compare) COMPARE=$(realpath "$2"); shift 2;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "count-syscalls: unknown option $1" >&2; exit 2;;
  esac
done
case $SOURCE in http|local) ;; *) echo "count-syscalls: --source is http or local" >&2; exit 2;; esac
FIX=$(realpath -m "$FIX")
[ -f "$FIX/fixture.env" ] || { echo "count-syscalls: $FIX/fixture.env missing: build it with scripts/make-fixture.sh 2G $FIX" >&2; exit 1; }
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
load_fixture md5
for t in strace dd fusermount; do command -v $t > /dev/null || { echo "count-syscalls: needs $t" >&2; exit 1; }; done
[ "$SOURCE" = local ] || for t in nginx curl; do command -v $t > /dev/null || { echo "count-syscalls: needs $t" >&2; exit 1; }; done
[ -z "$COMPARE" ] || [ -x "$COMPARE/bin/jigdofs" ] || { echo "count-syscalls: $COMPARE/bin/jigdofs not found" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/count-syscalls.XXXXXX")
NGINX_PID=""
cleanup() {
  fusermount -uz "$W/mnt" 2> /dev/null || true
  [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/mnt"
(cd "$REPO" && npm run build --silent > /dev/null 2>&1) || { echo "count-syscalls: npm run build failed" >&2; exit 1; }

if [ "$SOURCE" = http ]; then
  start_nginx "$W"
  SRC=(--mirror "$LABEL=$NGINX_URL")
else
  source_args local
  SRC=("${SRC_ARGS[@]}")
fi
CALLS=statx,newfstatat,fstat,openat,close,pread64,pwrite64,utimensat,link,unlink,rename,mkdir,ftruncate,fdatasync

# Context switches (voluntary + involuntary) of the process's threads alive now.
switches() { cat /proc/"$1"/task/*/status 2> /dev/null | awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }'; }

# Mounts with JIGDOFS and the cache dir CACHE (emptied first for http), starts the threads with a 2 MiB read
# elsewhere, reads the range with dd; with TRACE=1 under strace. Sets DAEMON, SWITCHES (context switches of the
# daemon's threads during the dd; meaningless under strace, which stops each thread at each traced call).
pass() { # JIGDOFS CACHE TRACE
  local jd=$1 cache=$2 sp="" c0
  [ "$SOURCE" = local ] || rm -rf "$cache"
  "$jd" mount "$JIGDO" "$W/mnt" --cache-dir "$cache" "${SRC[@]}" -q
  DAEMON=$(daemon_pid "$jd" "$W/mnt")
  dd if="$W/mnt/$NAME.iso" of=/dev/null bs=1M count=2 skip=100 status=none
  if [ "$3" = 1 ]; then
    strace -f -c -p "$DAEMON" -e trace="$CALLS" -o "$W/strace.out" 2> /dev/null & sp=$!
    sleep 1 # attached to every thread
  fi
  c0=$(switches "$DAEMON")
  dd if="$W/mnt/$NAME.iso" of=/dev/null bs=1M count="$MIB" skip="$SKIP" status=none
  SWITCHES=$(($(switches "$DAEMON") - c0))
  if [ -n "$sp" ]; then sleep 0.5; kill -INT "$sp"; wait "$sp" 2> /dev/null || true; fi
  "$jd" umount "$W/mnt" > /dev/null
}

run() { # LABEL JIGDOFS
  local jd=$2 cache=$W/cache-$1 switches
  rm -rf "$cache"
  if [ "$SOURCE" = local ]; then # warm the hash index: every part hashed once
    "$jd" mount "$JIGDO" "$W/mnt" --cache-dir "$cache" "${SRC[@]}" -q
    dd if="$W/mnt/$NAME.iso" of=/dev/null bs=1M status=none
    "$jd" umount "$W/mnt" > /dev/null
  fi
  pass "$jd" "$cache" 0
  switches=$SWITCHES
  pass "$jd" "$cache" 1
  # strace -c lines: % time, seconds, usecs/call, calls, [errors], syscall
  awk -v label="$1" -v cs="$switches" -v traced="$CALLS" '
    $NF ~ /^[a-z0-9_]+$/ && $4 ~ /^[0-9]+$/ && $NF != "syscall" { calls[$NF] = $4 }
    END {
      printf "| %s | %d | %d | %d |", label, calls["fdatasync"], cs, calls["total"]
      n = split(traced, k, ",")
      for (i = 1; i <= n; i++) if (calls[k[i]] && k[i] != "fdatasync") printf " %s %d", k[i], calls[k[i]]
      printf " |\n"
    }' "$W/strace.out"
}

echo "count-syscalls: fixture $FIX ($NAME.iso), source $SOURCE, dd of $MIB MiB from MiB $SKIP, $RUNS round(s)"
echo "  machine: $(nproc) CPUs, $(uname -r), node $(node -v); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| build | parts committed | context switches | system calls traced | by call |"
echo "|---|---|---|---|---|"
for round in $(seq "$RUNS"); do
  run "this ($(git -C "$REPO" rev-parse --short HEAD))" "$REPO/bin/jigdofs"
  [ -z "$COMPARE" ] || run "compare ($(git -C "$COMPARE" rev-parse --short HEAD 2> /dev/null || basename "$COMPARE"))" "$COMPARE/bin/jigdofs"
done
