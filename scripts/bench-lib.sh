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
