#!/usr/bin/env bash
# bench-network.sh — parts over HTTP: `jigdofs make-image`, `cp` of a `jigdofs mount`, and `jigdo-lite`,
# end to end on the same local mirror (nginx on 127.0.0.1, sendfile), without and with added latency.
#
# Usage:  scripts/bench-network.sh [FIXTURE_DIR] [options]
#   FIXTURE_DIR        made by scripts/make-fixture.sh (default /work/bench-data/2g)
#   --latency "L..."   added round-trip times in ms, one set of runs each (default "0 20"; see start_mirror)
#   --runs N           runs of each tool per latency (default 1); every run is printed
#   --no-jigdo-lite    skip jigdo-lite (it is the slowest)
#   --no-mount         skip the mount runs (cp and 4 KiB reads)
#   --reads N          4 KiB reads in distinct uncached parts, on a fresh mount (default 8)
#   --threads          after each mount+cp, print the daemon's CPU per thread (from /proc/PID/task)
#
# What is measured, each with an empty jigdofs cache (and a fresh directory for jigdo-lite), with the parts
# ONLY on the HTTP mirror (the .jigdo and template are local files; the .jigdo's own Debian= server is not
# running, the mirror is given with --mirror Debian=URL, and to jigdo-lite as its Debian mirror):
#   make-image   jigdofs make-image X.jigdo -o OUT --cache-dir EMPTY --mirror Debian=URL     (wall, CPU);
#                then the same with --keep-parts (the downloaded parts stay in the cache, as before they always did)
#   mount+cp     jigdofs mount ... ; cp MNT/X.iso OUT ; jigdofs umount      (wall of cp; CPU of the daemon);
#                then the same with `mount --direct-io` (reads bypass the kernel's page cache)
#   jigdo-lite   HOME=H jigdo-lite --noask X.jigdo   (H/.jigdo-lite sets debianMirror=URL)   (wall, CPU)
#   4k-read      on a fresh mount: one 4 KiB pread in the middle of a part nobody read yet, per part
#                (parts: the largest, the smallest over 256 KiB, the rest spread over the sizes); the
#                time includes fetching and verifying the whole part
# Every run starts after a `sync`: the files the run before removed (a 2 GB image, a 2 GB cache) are then freed on
# disk rather than while the next tool runs. For each run: mirror CPU = the mirror process's CPU during the run (it shares the machine's cores);
# downloaded = body bytes the mirror sent (its request log), needed = bytes of the distinct
# parts of the image; every image written is checked against the fixture's MD5SUMS.
# Nothing is written into the repository; everything temporary is removed on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"

FIX=/work/bench-data/2g LATENCIES="0 20" RUNS=1 JL=1 MOUNT=1 READS=8 THREADS=0
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --latency) LATENCIES=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --no-jigdo-lite) JL=0; shift;;
    --no-mount) MOUNT=0; shift;;
    --reads) READS=$2; shift 2;;
    --threads) THREADS=1; shift;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-network: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")
[ -f "$FIX/fixture.env" ] || { echo "bench-network: $FIX/fixture.env missing: build it with scripts/make-fixture.sh 2G $FIX" >&2; exit 1; }
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
load_fixture md5
[ -n "$LABEL" ] || { echo "bench-network: no [Servers] label in $JIGDO" >&2; exit 1; }
for tool in node jigdo-lite fusermount nginx curl; do command -v "$tool" > /dev/null || { echo "bench-network: needs $tool" >&2; exit 1; }; done

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-network.XXXXXX")
MIRROR_PID="" PROXY_PID=""
cleanup() {
  for p in $PROXY_PID $MIRROR_PID; do kill "$p" 2> /dev/null || true; done
  for m in "$W"/mnt*; do [ -d "$m" ] && { "$JIGDOFS" umount "$m" > /dev/null 2>&1 || fusermount -uz "$m" 2> /dev/null || true; }; done
  rm -rf "$W"
}
trap cleanup EXIT
(cd "$REPO" && npm run build --silent > /dev/null 2>&1) || { echo "bench-network: npm run build failed" >&2; exit 1; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / 1e6 / (s > 0 ? s : 1e-9) }'; }
md5_of() { md5sum "$1" | cut -d' ' -f1; }
check() { # FILE WHAT
  local got; got=$(md5_of "$1")
  [ "$got" = "$EXPECT" ] || { echo "bench-network: $2 wrote a wrong image ($got, expected $EXPECT)" >&2; exit 1; }
}

# The mirror: nginx on 127.0.0.1 (start_nginx in bench-lib.sh). LATENCY > 0: clients go through
# scripts/delay-proxy.mjs, which holds each chunk LATENCY/2 ms each way (a round trip of LATENCY ms); `tc
# netem` would be the better tool but this kernel has no sch_netem (and netem on lo would slow every other
# loopback user of the machine too).
# The mirror's files are read once first: the first timed job would otherwise read them from the disk while writing
# its image, and the jobs after it would find them in memory. Measured after `echo 3 > /proc/sys/vm/drop_caches`, one
# make-image at 20 ms: 30.4 s without this read, 15.8 s with it (BENCHMARKS.md, "Parts over HTTP at +20 ms").
start_mirror() { # LATENCY
  find "$MIRROR" -type f -exec cat {} + > /dev/null
  start_nginx "$W"
  MIRROR_PID=$NGINX_PID URL=$NGINX_URL
  if [ "$1" -gt 0 ]; then
    node "$HERE/delay-proxy.mjs" "$NGINX_PORT" "$(($1 / 2))" > "$W/proxy.port" & PROXY_PID=$!
    for _ in $(seq 50); do [ -s "$W/proxy.port" ] && break; sleep 0.1; done
    URL="http://127.0.0.1:$(head -1 "$W/proxy.port")/"
  fi
}
stop_mirror() {
  for p in $PROXY_PID $MIRROR_PID; do kill "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true; done
  MIRROR_PID="" PROXY_PID=""
}
# Body bytes and GET requests the mirror logged from line $1 on ("GET uri status bytes").
mirror_since() { sleep 0.3; tail -n +"$1" "$W/mirror.log" | awk '$1 == "GET" { n++; b += $4 } END { printf "%d %d\n", b, n }'; }
log_lines() { wc -l < "$W/mirror.log" | awk '{ print $1 + 1 }'; }
TICK=$(getconf CLK_TCK)
# CPU seconds (user+sys) a process used so far.
cpu_of() { awk -v t="$TICK" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat"; }
# CPU seconds of the mirror: nginx's master and workers, and the delay proxy if any.
mirror_cpu() {
  local pids; pids="$MIRROR_PID $(pgrep -P "$MIRROR_PID" | tr '\n' ' ') $PROXY_PID"
  for p in $pids; do [ -r "/proc/$p/stat" ] && cat "/proc/$p/stat"; done | awk -v t="$TICK" '{ s += $14 + $15 } END { printf "%.1f", s / t }'
}
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Distinct parts: total bytes, and the parts chosen for the 4 KiB reads ("offset length" lines).
cat > "$W/parts.mjs" << 'EOF'
const [jigdoPath, cacheDir, reads] = process.argv.slice(2);
const { loadJigdo, openImage, selectImage } = await import(process.env.REPO_DIST + '/engine/session.js');
const jigdo = await loadJigdo(jigdoPath);
const s = await openImage(jigdo, selectImage(jigdo), { local: [], scan: [], cacheDir, memory: 64 << 20, log: () => {} });
const parts = [...s.layout.parts.values()].filter((p) => p.length > 0);
console.log(parts.reduce((n, p) => n + p.length, 0));
const big = parts.filter((p) => p.length >= 256 << 10).sort((a, b) => a.length - b.length);
const n = Math.min(Number(reads), big.length);
const pick = new Set(Array.from({ length: n }, (_, k) => Math.round((k * (big.length - 1)) / Math.max(1, n - 1))));
for (const i of pick) console.log(big[i].offsets[0], big[i].length);
await s.close();
process.exit(0);
EOF
REPO_DIST="$REPO/dist" node "$W/parts.mjs" "$JIGDO" "$W/cache-info" "$READS" > "$W/parts.txt"
NEEDED=$(head -1 "$W/parts.txt")
echo "fixture: $FIX ($NAME.iso, $ISO_BYTES bytes; $JIGDO_MD5_PARTS parts, $NEEDED bytes of distinct parts); label $LABEL"
echo "machine: $(nproc) CPUs, $(uname -r), node $(node -v); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

row() { # LAT TOOL WALL MB/S "DOWNLOADED" "CPU s" MIRROR_CPU
  printf '| %3s ms | %-11s | %7s s | %6s MB/s | %s | %s | %s s |\n' "$@"
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(echo "$6" | grep -oE '[0-9.]+' | head -1)" "$7" >> "$W/raw.tsv"
}
# mount_cp LABEL [MOUNT ARG...]: a mount with an empty cache, cp of its image (wall of the cp, CPU of the daemon)
mount_cp() {
  local label=$1 d0 d1 m0 m1 t0 t1 from bytes reqs; shift
  mkdir -p "$W/mnt"; sync; from=$(log_lines)
  "$JIGDOFS" mount "$JIGDO" "$W/mnt" --cache-dir "$W/cache" --mirror "$LABEL=$URL" -q "$@"
  DAEMON=$(daemon_pid "$JIGDOFS" "$W/mnt")
  d0=$(cpu_of "$DAEMON"); m0=$(mirror_cpu)
  t0=$(now); cp "$W/mnt/$NAME.iso" "$W/out.iso"; t1=$(now)
  d1=$(cpu_of "$DAEMON"); m1=$(mirror_cpu)
  if [ "$THREADS" = 1 ]; then
    echo "daemon threads (user s, sys s), busiest first:" \
      "$(for t in /proc/"$DAEMON"/task/*; do awk -v k="$TICK" '{ printf "%.2f %.2f\n", $14 / k, $15 / k }' "$t/stat"; done | sort -k1,1 -gr | awk '$1 + $2 >= 0.05 { printf "%s%s/%s", (n++ ? ", " : ""), $1, $2 }')"
  fi
  "$JIGDOFS" umount "$W/mnt" > /dev/null; check "$W/out.iso" "$label"
  read -r bytes reqs < <(mirror_since "$from")
  row "$LAT" "$label" "$(secs "$t0" "$t1")" "$(mbps "$ISO_BYTES" "$(secs "$t0" "$t1")")" "$bytes / $NEEDED ($reqs)" "daemon $(since "$d0" "$d1") s" "$(since "$m0" "$m1")"
  rm -rf "$W/cache" "$W/out.iso"
}
# make_image LABEL [ARG...]: make-image with an empty cache (wall, CPU of the process)
make_image() {
  local label=$1; shift
  rm -rf "$W/cache" "$W/out.iso"; sync; from=$(log_lines); m0=$(mirror_cpu); t0=$(now)
  /usr/bin/time -f "%U %S" -o "$W/time" "$JIGDOFS" make-image "$JIGDO" -o "$W/out.iso" --cache-dir "$W/cache" --mirror "$LABEL=$URL" -q "$@"
  t1=$(now); check "$W/out.iso" "$label"
  read -r bytes reqs < <(mirror_since "$from")
  row "$LAT" "$label" "$(secs "$t0" "$t1")" "$(mbps "$ISO_BYTES" "$(secs "$t0" "$t1")")" "$bytes / $NEEDED ($reqs)" "$(awk '{ printf "%.1f s", $1 + $2 }' "$W/time")" "$(since "$m0" "$(mirror_cpu)")"
  rm -rf "$W/cache" "$W/out.iso"
}
echo "| latency | tool | wall | speed | downloaded / needed (requests) | CPU user+sys | mirror CPU |"
echo "|---|---|---|---|---|---|---|"

for LAT in $LATENCIES; do
  start_mirror "$LAT"
  for run in $(seq "$RUNS"); do
    # --- jigdofs make-image (by default the parts it downloads leave the cache once the image is written)
    make_image make-image
    make_image "make-image --keep-parts" --keep-parts

    # --- cp of a mounted image, with the kernel's page cache (default) and with --direct-io
    if [ "$MOUNT" = 1 ]; then
      mount_cp "mount+cp"
      mount_cp "mount+cp --direct-io" --direct-io
    fi

    # --- jigdo-lite (wget, 30 files per batch, one batch at a time)
    if [ "$JL" = 1 ]; then
      rm -rf "$W/jl" "$W/jlhome"; mkdir -p "$W/jl" "$W/jlhome"
      cp "$JIGDO" "$TEMPLATE" "$W/jl/"
      printf "debianMirror='%s'\n" "$URL" > "$W/jlhome/.jigdo-lite"
      sync; from=$(log_lines); m0=$(mirror_cpu); t0=$(now)
      (cd "$W/jl" && HOME="$W/jlhome" /usr/bin/time -f "%U %S" -o "$W/time" jigdo-lite --noask "$NAME.jigdo" < /dev/null > "$W/jl.log" 2>&1) \
        || { echo "bench-network: jigdo-lite failed; last lines of its output:" >&2; tail -20 "$W/jl.log" >&2; exit 1; }
      t1=$(now); check "$W/jl/$NAME.iso" jigdo-lite
      read -r bytes reqs < <(mirror_since "$from")
      row "$LAT" jigdo-lite "$(secs "$t0" "$t1")" "$(mbps "$ISO_BYTES" "$(secs "$t0" "$t1")")" "$bytes / $NEEDED ($reqs)" "$(awk '{ printf "%.1f s", $1 + $2 }' "$W/time")" "$(since "$m0" "$(mirror_cpu)")"
      rm -rf "$W/jl" "$W/jlhome"
    fi
  done

  # --- 4 KiB reads in uncached parts, on a fresh mount
  if [ "$MOUNT" = 1 ]; then
    mkdir -p "$W/mnt"; rm -rf "$W/cache"
    "$JIGDOFS" mount "$JIGDO" "$W/mnt" --cache-dir "$W/cache" --mirror "$LABEL=$URL" -q
    tail -n +2 "$W/parts.txt" | node --input-type=module -e '
      import { open } from "node:fs/promises";
      const lines = (await new Promise((r) => { let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => r(s)); })).trim().split("\n");
      const fh = await open(process.argv[1], "r");
      const out = [];
      for (const l of lines) {
        const [off, len] = l.split(" ").map(Number);
        const at = Math.floor((off + len / 2) / 4096) * 4096;
        const t0 = process.hrtime.bigint();
        await fh.read(Buffer.alloc(4096), 0, 4096, at);
        out.push([Number(process.hrtime.bigint() - t0) / 1e6, len]);
      }
      await fh.close();
      out.sort((a, b) => a[0] - b[0]);
      const med = out[Math.floor(out.length / 2)][0];
      console.log(`4k-read ms (part size): ${out.map(([ms, len]) => `${ms.toFixed(0)} (${(len / 1e6).toFixed(2)} MB)`).join(", ")}; median ${med.toFixed(0)} ms`);
    ' "$W/mnt/$NAME.iso" | sed "s/^/| $LAT ms | /"
    "$JIGDOFS" umount "$W/mnt" > /dev/null
    rm -rf "$W/cache"
  fi
  stop_mirror
done
echo
echo "Medians over $RUNS round(s) (CPU: the jigdofs process, or the mount daemon during the cp; per GB of image):"
echo "| latency | tool | wall s | CPU s | CPU s per GB | mirror CPU s | vs jigdo-lite (wall) |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' -v gb="$(awk -v b="$ISO_BYTES" 'BEGIN { print b / 1e9 }')" '
  function med(list,   n, a, i, j, t) { n = split(list, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $1 SUBSEP $2; w[k] = w[k] " " $3; c[k] = c[k] " " $4; m[k] = m[k] " " $5; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
  END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, SUBSEP); jl = (p[1] SUBSEP "jigdo-lite")
    ratio = (jl in w) ? sprintf("%.2fx", med(w[jl]) / med(w[k])) : ""
    printf "| %s ms | %s | %.1f | %.1f | %.2f | %.1f | %s |\n", p[1], p[2], med(w[k]), med(c[k]), med(c[k]) / gb, med(m[k]), ratio } }' "$W/raw.tsv"
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
