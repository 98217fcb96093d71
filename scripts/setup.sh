#!/usr/bin/env bash
# setup.sh — prepare a Debian 12 machine for building and testing jigdofs. Run as root. Idempotent:
# apt is only touched when a package is missing, and running it twice changes nothing.
#
#   1. system packages: jigdo-file, xorriso, genisoimage (the oracles and fixture builders), libfuse2 (linked by
#      fuse-native's prebuilt binary), fuse3 (fusermount), e2fsprogs (mkfs.ext4 -d, debugfs), openssl gzip bzip2,
#      ca-certificates (npm over https); for `jigdofs serve`'s tests and benchmark: curl, wget, aria2, qemu-utils +
#      qemu-block-extra (qemu-img over http), squid, nginx-light (has the slice module); udftools (mkudffs: UDF test images);
#      util-linux-extra (fincore: the tests of files dropped from the page cache measure with it)
#      fusermount3 must be setuid root (fuse3's postinst makes it so) for the regular-user tests
#   2. npm ci (npm install when there is no package-lock.json) in the repository root
#   3. npm run build
#
# Needs Node >= 20 already installed (Debian 12's own nodejs is 18, too old).
set -Eeuo pipefail
trap 'echo "setup: failed (rc $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKGS=(jigdo-file xorriso genisoimage libfuse2 fuse3 e2fsprogs openssl gzip bzip2 ca-certificates
  curl wget aria2 qemu-utils qemu-block-extra squid nginx-light udftools util-linux-extra)

say() { echo "setup: $*"; }

# dpkg -s succeeds for removed-but-not-purged packages too, so look at the status line.
installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'; }

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  say "system packages: all ${#PKGS[@]} present, skipping apt"
else
  [ "$(id -u)" -eq 0 ] || { echo "setup: missing packages (${missing[*]}); run as root" >&2; exit 1; }
  say "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Minimal images lack apt-utils and debconf says so on every install: noise, not an error.
  apt-get install -y -qq --no-install-recommends "${PKGS[@]}" 2> >(grep -v '^debconf: delaying' >&2) >/dev/null
fi

# Regular users mount through fusermount3, which must be setuid root. fuse3's postinst makes it so unless a
# dpkg-statoverride says otherwise; a copy that lost the bit (an image built without it) gets it back the same way.
fm=$(command -v fusermount3 || true)
if [ -n "$fm" ] && [ ! -u "$fm" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "setup: $fm is not setuid root; run as root" >&2; exit 1; }
  if dpkg-statoverride --list "$fm" >/dev/null 2>&1; then
    echo "setup: $fm is not setuid root (a dpkg-statoverride says so): regular users cannot mount" >&2; exit 1
  fi
  say "fusermount3: setting the setuid bit, as fuse3's postinst does"
  chmod 4755 "$fm"
fi

command -v node >/dev/null || { echo "setup: node not found; install Node >= 20 first" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "setup: Node $(node --version) is too old; need >= 20" >&2; exit 1; }

cd "$ROOT"
if [ -f package-lock.json ]; then
  say "npm ci ($(node --version), npm $(npm --version 2>/dev/null))"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "npm install (no package-lock.json)"
  npm install --no-audit --no-fund --loglevel=error
fi

say "npm run build"
npm run --silent build

say "done"
