# Sourced first by the shell tests (`source "$(dirname "$0")/shell_util.sh"`): the programs
# under test (make test passes their paths), a scratch folder removed on exit, pass/fail
# counting, expect, and finish for the last line.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRAIN=${LZ_TRAIN:-$ROOT/bin/train}
EVAL=${LZ_EVAL:-$ROOT/bin/eval}
TOOL=${LZ_DATA_TOOL:-$ROOT/bin/lz-data}
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/lz_${TEST_NAME#test_}_XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect NAME CODE REGEX -- command...: exit code CODE, stderr matching REGEX, and for
# errors (code 1 or 2) exactly one line on stderr.
expect() {
    local name=$1 code=$2 re=$3
    shift 4
    "$@" >"$T/out" 2>"$T/err"
    local rc=$? lines
    lines=$(wc -l < "$T/err")
    if [ $rc = "$code" ] && grep -Eq -- "$re" "$T/err" && { [ "$code" = 0 ] || [ "$lines" = 1 ]; }; then
        pass "$name"
    else fail "$name (exit $rc, $lines lines on stderr: $(head -c 600 "$T/err"))"; fi
}

# need_programs PATH...: stop with a failure when one is not built.
need_programs() {
    local b
    for b in "$@"; do
        [ -e "$b" ] || { echo "FAIL $b is not built (make $(basename "$b"))"; exit 1; }
    done
}

# The summary line, and the exit status of the test.
finish() {
    [ $fails = 0 ] && echo "$TEST_NAME: all passed" || echo "$TEST_NAME: $fails failed"
    exit $((fails > 0))
}
