# bench-lib.sh — sourced by the bench-*.sh scripts (needs FIX and HERE set): shared set-up steps.

# Makes sure the fixture in $FIX exists: waits for a make-fixture.sh already building it, else builds it.
ensure_fixture() {
  [ -f "$FIX/fixture.env" ] && return 0
  if pgrep -f "make-fixture.sh .*$FIX" > /dev/null 2>&1; then
    echo "bench: waiting for the fixture being built in $FIX ..." >&2
    while [ ! -f "$FIX/fixture.env" ]; do
      pgrep -f "make-fixture.sh .*$FIX" > /dev/null 2>&1 || { echo "bench: the fixture build in $FIX stopped without fixture.env" >&2; exit 1; }
      sleep 30
    done
    return 0
  fi
  echo "bench: building the fixture: make-fixture.sh ${FIXTURE_SIZE:-2G} $FIX" >&2
  bash "$HERE/make-fixture.sh" "${FIXTURE_SIZE:-2G}" "$FIX" >&2
}

# Reads $FIX/fixture.env (NAME, MIRROR, ISO_BYTES...) and sets, for variant $1 (md5 | sha256 | bz2):
# JIGDO and TEMPLATE, EXPECT (the image's MD5 from MD5SUMS) and LABEL (the first [Servers] label).
load_fixture() {
  # shellcheck disable=SC1091
  . "$FIX/fixture.env"
  case $1 in md5) BASE=$NAME;; sha256|bz2) BASE=$NAME-$1;; *) echo "bench: unknown variant $1" >&2; exit 2;; esac
  JIGDO=$FIX/$BASE.jigdo TEMPLATE=$FIX/$BASE.template
  [ -f "$JIGDO" ] && [ -f "$TEMPLATE" ] || { echo "bench: $JIGDO or its template is missing (variant not built?)" >&2; exit 1; }
  EXPECT=$(awk -v f="./$NAME.iso" '$2 == f { print $1 }' "$FIX/MD5SUMS")
  [ -n "$EXPECT" ] || { echo "bench: no MD5 of $NAME.iso in $FIX/MD5SUMS" >&2; exit 1; }
  LABEL=$(awk '/^\[/ { s = ($0 == "[Servers]") ; next } s && /^[^#;]*=/ { sub(/=.*/, ""); gsub(/[ \t]/, ""); print; exit }' "$JIGDO")
}

# SRC_ARGS: jigdofs' source options for source $1 (local: --local LABEL=MIRROR | scan: --scan MIRROR).
source_args() {
  case $1 in
    local) SRC_ARGS=(--local "${LABEL:-Debian}=$MIRROR");;
    scan) SRC_ARGS=(--scan "$MIRROR");;
    *) echo "bench: unknown source $1" >&2; exit 2;;
  esac
}

# DROP=auto becomes yes when the page cache can be dropped here (root, writable drop_caches), else no.
resolve_drop() {
  if [ "$DROP" = auto ]; then
    if (sync && echo 3 > /proc/sys/vm/drop_caches) 2> /dev/null; then DROP=yes; else DROP=no; fi
  fi
}

# The median of the numbers on stdin, one per line (the mean of the middle two for an even count).
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The pid of the mount daemon serving MNT, from `jigdofs status MNT --json` run with JIGDOFS (a bin/jigdofs).
daemon_pid() { # JIGDOFS MNT
  "$1" status "$2" --json | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).pid))'
}

# A free TCP port on 127.0.0.1.
free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

# nginx (Debian's nginx-light, scripts/setup.sh installs it) serving $MIRROR on a free port of 127.0.0.1 with
# sendfile, its access log ($1/mirror.log) counting requests and body bytes ("GET uri status bytes"), its own
# files under $1/nginx. Sets NGINX_PID, NGINX_PORT and NGINX_URL; the caller stops it (kill NGINX_PID).
start_nginx() { # WORKDIR
  local w=$1
  : > "$w/mirror.log"; mkdir -p "$w/nginx"
  NGINX_PORT=$(free_port)
  cat > "$w/nginx/nginx.conf" << NGX
daemon off; worker_processes 2; pid $w/nginx/nginx.pid; error_log $w/nginx/error.log;
events {}
http {
  log_format counts '\$request_method \$uri \$status \$body_bytes_sent';
  access_log $w/mirror.log counts; sendfile on; client_body_temp_path $w/nginx; proxy_temp_path $w/nginx;
  fastcgi_temp_path $w/nginx; uwsgi_temp_path $w/nginx; scgi_temp_path $w/nginx;
  server { listen 127.0.0.1:$NGINX_PORT; root $MIRROR; }
}
NGX
  nginx -c "$w/nginx/nginx.conf" & NGINX_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
  : > "$w/mirror.log"
  NGINX_URL="http://127.0.0.1:$NGINX_PORT/"
}

# Makes DIR/tree: N files of 1,100 random bytes in 100 folders, and DIR/img.bin, every tenth of them concatenated (the
# tree of a make-template over many small files: bench-make-template-tree.sh, bench-startup.sh --make-template-files).
small_file_tree() { # DIR N
  node -e '
    const fs = require("fs"), crypto = require("crypto"), path = require("path");
    const [dir, n] = [process.argv[1], Number(process.argv[2])];
    const image = fs.openSync(path.join(dir, "img.bin"), "w");
    for (let i = 0; i < n; i++) {
      const sub = path.join(dir, "tree", String(i % 100));
      if (i < 100) fs.mkdirSync(sub, { recursive: true });
      const b = crypto.randomBytes(1100);
      fs.writeFileSync(path.join(sub, `f${i}.bin`), b);
      if (i % 10 === 0) fs.writeSync(image, b);
    }
    fs.closeSync(image);' "$1" "$2"
}
