#!/usr/bin/env bash
# demo.sh — the main job on the built-in sample: mount a .jigdo, copy the image out of the mount and check
# its checksum against the one the template records, read its ISO directory, try a loop mount, unmount.
# Run as root after scripts/setup.sh. Uses only files in this repository (test/fixtures/samples).
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
J="$ROOT/bin/jigdofs"
S="$ROOT/test/fixtures/samples"
TMP=$(mktemp -d /tmp/jigdofs-demo.XXXXXX)
MNT="$TMP/mnt"
cleanup() {
  mountpoint -q "$TMP/loop" 2>/dev/null && umount "$TMP/loop"
  grep -q " $MNT " /proc/mounts && { "$J" umount "$MNT" 2>/dev/null || fusermount -uz "$MNT"; }
  rm -rf "$TMP"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "what the .jigdo describes"
"$J" info "$S/jf-md5-gzip.jigdo" --cache-dir "$TMP/cache"
expected=$("$J" info "$S/jf-md5-gzip.jigdo" --cache-dir "$TMP/cache" --json | node -e 'process.stdin.on("data",d=>console.log(JSON.parse(d).checksum.hex))')

step "mount it (parts come from the sample's parts/ folder)"
mkdir -p "$MNT"
start=$(date +%s%N)
"$J" mount "$S/jf-md5-gzip.jigdo" "$MNT" --scan "$S/parts" --cache-dir "$TMP/cache"
echo "mounted in $(( ($(date +%s%N) - start) / 1000000 )) ms"
ls -l "$MNT"

step "copy the image out of the mount and check it"
cp "$MNT/image.iso" "$TMP/image.iso"
got=$(md5sum < "$TMP/image.iso" | cut -d' ' -f1)
echo "md5 of the copy:        $got"
echo "md5 the template wants: $expected"
[ "$got" = "$expected" ] || { echo "demo: MISMATCH" >&2; exit 1; }
echo "OK: the copy is byte-exact"

step "read the ISO's directory straight from the mount"
isoinfo -R -l -i "$MNT/image.iso" | sed -n '1,12p'

step "loop-mount it"
mkdir -p "$TMP/loop"
if mount -o loop,ro "$MNT/image.iso" "$TMP/loop" 2>"$TMP/loop.err"; then
  ls -l "$TMP/loop"; umount "$TMP/loop"
else
  echo "this kernel cannot mount it: $(head -1 "$TMP/loop.err")"
  grep -qw iso9660 /proc/filesystems || echo "(no iso9660 driver in this kernel; the tests loop-mount an ext4 image served the same way)"
fi

step "status of the mount"
"$J" status "$MNT"

step "unmount"
"$J" umount "$MNT"
echo "done"
