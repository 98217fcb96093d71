#!/usr/bin/env bash
# bench-scan-image.sh — issue 10: upgrade from the old image file. v2 = the fixture's image and .jigdo (md5);
# v1 = the same tree with --replace % (default 10) of its packages replaced by other bytes of the same size,
# as an ISO (xorriso -as mkisofs -r -J -joliet-long, like the fixture). Parts come from nginx on 127.0.0.1
# serving the fixture's mirror (all parts; only what v1 lacks should be asked for).
#
# Usage:  scripts/bench-scan-image.sh [FIXTURE_DIR] [--runs N] [--replace PERCENT] [--no-jigdo-lite]
#   FIXTURE_DIR   made by scripts/make-fixture.sh (default /work/bench-data/2g)
#
# Measured (each run with an empty jigdofs cache; v1 built, and extracted for jigdo-lite, outside the timing):
#   index        listing v1's directory tree (src/discfs listDisc over the image file, pread only)
#   hash         jigdofs missing --scan v1.iso --offline: listing + hashing every candidate extent (MB/s of
#                the parts found inside v1)
#   make-image   jigdofs make-image v2.jigdo --scan v1.iso --mirror LABEL=nginx: wall, bytes nginx sent; then
#                again with only that run's hash index kept (no cached parts: the second upgrade from v1)
#   jigdo-lite   jigdo-lite --noask --scan V1DIR (V1DIR = xorriso -osirrox on -extract of v1.iso; its users
#                loop-mount v1, which this kernel cannot), same nginx: wall, bytes nginx sent
# "needed" = bytes of the parts v1 lacks (jigdofs missing --json). Every image written is checked against
# the fixture's MD5SUMS. Everything temporary (about 3x the image size) is removed on exit.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
JIGDOFS="$REPO/bin/jigdofs"

FIX=/work/bench-data/2g RUNS=1 REPLACE=10 JL=1
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { FIX=$1; shift; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2;;
    --replace) REPLACE=$2; shift 2;;
    --no-jigdo-lite) JL=0; shift;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0;;
    *) echo "bench-scan-image: unknown option $1" >&2; exit 2;;
  esac
done
FIX=$(realpath -m "$FIX")
[ -f "$FIX/fixture.env" ] || { echo "bench-scan-image: $FIX/fixture.env missing: build it with scripts/make-fixture.sh 2G $FIX" >&2; exit 1; }
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
load_fixture md5
for t in node nginx xorriso jigdo-lite curl md5sum; do command -v $t > /dev/null || { echo "bench-scan-image: needs $t (scripts/setup.sh)" >&2; exit 1; }; done

W=$(mktemp -d "${TMPDIR:-/tmp}/bench-scan-image.XXXXXX")
NGINX_PID=""
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
(cd "$REPO" && npm run build --silent > /dev/null 2>&1) || { echo "bench-scan-image: npm run build failed" >&2; exit 1; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
check() { local s; s=$(md5sum < "$1"); s=${s%% *}; [ "$s" = "$EXPECT" ] || { echo "bench-scan-image: $2 wrote a wrong image ($s)" >&2; exit 1; }; }

# ---- v1: the image tree with REPLACE % of its parts' files replaced (deterministic choice), as an ISO
echo "bench-scan-image: building v1 (outside the timing) ..." >&2
xorriso -osirrox on -indev "$FIX/$NAME.iso" -extract / "$W/tree" > /dev/null 2>&1
chmod -R u+w "$W/tree"
(cd "$W/tree" && find pool -type f | sort) > "$W/pool.txt"
awk -v p="$REPLACE" 'NR % int(100 / p) == 0' "$W/pool.txt" > "$W/replaced.txt"
while read -r f; do
  s=$(stat -c %s "$W/tree/$f"); rm -f "$W/tree/$f"
  { openssl enc -aes-128-ctr -nosalt -pbkdf2 -iter 1 -pass "pass:v1-$f" < /dev/zero 2> /dev/null || true; } | head -c "$s" > "$W/tree/$f"
done < "$W/replaced.txt"
xorriso -as mkisofs -r -J -joliet-long -V V1 -o "$W/v1.iso" "$W/tree" 2> /dev/null
rm -rf "$W/tree"
V1_BYTES=$(stat -c %s "$W/v1.iso")

# ---- nginx serving every part, logging the body bytes of each request
NPORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
mkdir -p "$W/nginx"
cat > "$W/nginx/nginx.conf" << NGX
daemon off; worker_processes 2; pid $W/nginx/nginx.pid; error_log $W/nginx/error.log;
events {}
http {
  log_format bytes '\$request_method \$status \$body_bytes_sent \$uri';
  access_log $W/nginx/access.log bytes; sendfile on; client_body_temp_path $W/nginx; proxy_temp_path $W/nginx;
  fastcgi_temp_path $W/nginx; uwsgi_temp_path $W/nginx; scgi_temp_path $W/nginx;
  server { listen 127.0.0.1:$NPORT; root $MIRROR; }
}
NGX
nginx -c "$W/nginx/nginx.conf" & NGINX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NPORT/" && break; sleep 0.1; done
URL="http://127.0.0.1:$NPORT/"
log_lines() { wc -l < "$W/nginx/access.log" 2> /dev/null | awk '{ print $1 + 1 }' || echo 1; }
sent_since() { sleep 0.3; tail -n +"$1" "$W/nginx/access.log" | awk '$1 == "GET" { n++; b += $3 } END { printf "%d %d\n", b, n }'; }

# ---- what v1 lacks
"$JIGDOFS" missing "$JIGDO" --scan "$W/v1.iso" --offline --cache-dir "$W/cache-n" --json -q > "$W/missing.json"
read -r NEEDED NMISSING FROMV1 FROMV1_BYTES < <(node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const img = j.fromImages[0] || { parts: 0, bytes: 0 };
  console.log(j.parts.reduce((n, p) => n + p.length, 0), j.missing, img.parts, img.bytes);' "$W/missing.json")
rm -rf "$W/cache-n"

echo "fixture: $FIX ($NAME.iso, $ISO_BYTES bytes, $JIGDO_MD5_PARTS parts); v1.iso $V1_BYTES bytes, $(wc -l < "$W/replaced.txt") of $(wc -l < "$W/pool.txt") pool files replaced ($REPLACE %)"
echo "v1 holds $FROMV1 parts ($FROMV1_BYTES bytes); it lacks $NMISSING parts ($NEEDED bytes)"
echo "machine: $(nproc) CPUs, $(uname -r), node $(node -v); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | step | wall | figure | downloaded / needed (requests) |"
echo "|---|---|---|---|---|"

cat > "$W/index.mjs" << 'EOF'
const { listDisc } = await import(process.env.REPO_DIST + '/discfs/index.js');
const { open } = await import('node:fs/promises');
const fh = await open(process.argv[2], 'r');
const size = (await fh.stat()).size;
const read = async (o, l) => { const b = Buffer.alloc(l); const { bytesRead } = await fh.read(b, 0, l, o); return b.subarray(0, bytesRead); };
const t0 = process.hrtime.bigint();
const listing = await listDisc(read, size);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
console.log(`${(ms / 1000).toFixed(3)} ${listing.files.length} ${listing.kind}`);
await fh.close();
EOF

for run in $(seq "$RUNS"); do
  read -r isecs ifiles ikind < <(REPO_DIST="$REPO/dist" node "$W/index.mjs" "$W/v1.iso")
  echo "| $run | index (list v1's directory) | $isecs s | $ifiles files ($ikind) | - |"

  rm -rf "$W/cache"; t0=$(now)
  "$JIGDOFS" missing "$JIGDO" --scan "$W/v1.iso" --offline --cache-dir "$W/cache" -q > /dev/null; t1=$(now)
  echo "| $run | hash (missing --scan v1.iso, empty cache) | $(secs "$t0" "$t1") s | $(awk -v b="$FROMV1_BYTES" -v t="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }') | - |"

  rm -rf "$W/cache" "$W/out.iso"; sync; from=$(log_lines); t0=$(now)
  "$JIGDOFS" make-image "$JIGDO" -o "$W/out.iso" --scan "$W/v1.iso" --cache-dir "$W/cache" --mirror "$LABEL=$URL" -q; t1=$(now)
  check "$W/out.iso" make-image
  read -r bytes reqs < <(sent_since "$from")
  echo "| $run | jigdofs make-image --scan v1.iso | $(secs "$t0" "$t1") s | $(awk -v b="$ISO_BYTES" -v t="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }') | $bytes / $NEEDED ($reqs) |"
  # The same with the hash index of that run only (no cached parts): the second upgrade from the same v1.
  mkdir -p "$W/cache2"; cp "$W/cache/hash-index.jsonl" "$W/cache2/"
  rm -rf "$W/cache" "$W/out.iso"; sync; from=$(log_lines); t0=$(now)
  "$JIGDOFS" make-image "$JIGDO" -o "$W/out.iso" --scan "$W/v1.iso" --cache-dir "$W/cache2" --mirror "$LABEL=$URL" -q; t1=$(now)
  check "$W/out.iso" make-image
  read -r bytes reqs < <(sent_since "$from")
  echo "| $run | jigdofs make-image --scan v1.iso, hash index kept | $(secs "$t0" "$t1") s | $(awk -v b="$ISO_BYTES" -v t="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }') | $bytes / $NEEDED ($reqs) |"
  rm -rf "$W/cache2" "$W/out.iso"

  if [ "$JL" = 1 ]; then
    rm -rf "$W/v1dir" "$W/jl" "$W/jlhome"; mkdir -p "$W/jl" "$W/jlhome"
    xorriso -osirrox on -indev "$W/v1.iso" -extract / "$W/v1dir" > /dev/null 2>&1
    cp "$JIGDO" "$TEMPLATE" "$W/jl/"
    printf "debianMirror='%s'\n" "$URL" > "$W/jlhome/.jigdo-lite"
    sync; from=$(log_lines); t0=$(now)
    (cd "$W/jl" && HOME="$W/jlhome" jigdo-lite --noask --scan "$W/v1dir" "$NAME.jigdo" < /dev/null > "$W/jl.log" 2>&1) \
      || { echo "bench-scan-image: jigdo-lite failed:" >&2; tail -20 "$W/jl.log" >&2; exit 1; }
    t1=$(now); check "$W/jl/$NAME.iso" jigdo-lite
    read -r bytes reqs < <(sent_since "$from")
    echo "| $run | jigdo-lite --scan V1DIR | $(secs "$t0" "$t1") s | $(awk -v b="$ISO_BYTES" -v t="$(secs "$t0" "$t1")" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }') | $bytes / $NEEDED ($reqs) |"
    rm -rf "$W/v1dir" "$W/jl" "$W/jlhome"
  fi
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
