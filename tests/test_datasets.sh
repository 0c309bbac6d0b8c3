#!/usr/bin/env bash
# The datasets/ commands without a network: exit codes of lz-data, fetch scripts that refuse
# truncated or damaged files (in the mirror and in the download cache) and fetch them again,
# and, when LZ_DATA_MIRROR is set, the real MNIST and Tiny Shakespeare converted and checked.
source "$(dirname "$0")/shell_util.sh"
REAL=${LZ_DATA_MIRROR:-}   # the real mirror, if any; the tests below set their own
# expect NAME CODE REGEX -- command...: exit code CODE and stderr matching REGEX; a runtime
# failure of lz-data (code 1) must be exactly one line (HDF5's own error printing is off).
expect() {
    local name=$1 code=$2 re=$3
    shift 4
    "$@" >"$T/out" 2>"$T/err"
    local rc=$? lines
    lines=$(wc -l < "$T/err")
    if [ $rc = "$code" ] && grep -Eq -- "$re" "$T/err" && { [ "$code" != 1 ] || [ "$lines" = 1 ] || [ "$1" != "$TOOL" ]; }; then
        pass "$name"
    else fail "$name (exit $rc, $lines lines on stderr: $(head -c 300 "$T/err"))"; fi
}

need_programs "$TOOL"

# ---- lz-data: usage is exit 2, a failed conversion exit 1, one line naming the file ----
expect "no arguments: usage" 2 "^usage:" -- "$TOOL"
expect "unknown command" 2 "unknown command 'frobnicate'" -- "$TOOL" frobnicate
expect "unknown option" 2 "unknown or incomplete option '--bogus'" -- "$TOOL" text "$T/x.h5" in.txt --bogus
expect "bad gzip level" 2 "takes 0..9" -- "$TOOL" text "$T/x.h5" in.txt --gzip 12
printf 'ok\xff' > "$T/bad.txt"
expect "invalid UTF-8: exit 1" 1 "^lz-data: $T/bad.txt: invalid UTF-8 at byte 2$" -- "$TOOL" text "$T/x.h5" "$T/bad.txt"
[ ! -e "$T/x.h5" ] && pass "failed conversion leaves no file" || fail "failed conversion left $T/x.h5"
echo "not hdf5" > "$T/plain.h5"
expect "info on a non-HDF5 file" 1 "plain.h5: not an HDF5 file" -- "$TOOL" info "$T/plain.h5"
printf 'hello world\n' > "$T/small.txt"
if "$TOOL" text "$T/small.h5" "$T/small.txt" --val-fraction 0.25 >/dev/null &&
   "$TOOL" info "$T/small.h5" --check | grep -q "train: 9 tokens"; then pass "text conversion"
else fail "text conversion"; fi
head -c "$(( $(stat -c %s "$T/small.h5") / 2 ))" "$T/small.h5" > "$T/half.h5"
expect "info on a truncated HDF5 file" 1 "half.h5: truncated HDF5 file \([0-9]+ of [0-9]+ bytes\)" -- "$TOOL" info "$T/half.h5"
expect "info on a missing file" 1 "nope.h5: cannot open: No such file or directory" -- "$TOOL" info "$T/nope.h5"

# ---- fetch scripts: damaged files are never used ----
export LZ_DATA_OFFLINE=1 LZ_DATA_TOOL="$TOOL"
mkdir -p "$T/badmirror/mnist"
head -c 1000 /dev/urandom > "$T/badmirror/tinyshakespeare.txt"
printf '\x1f\x8b\x08\x00trunc' > "$T/badmirror/mnist/train-images-idx3-ubyte.gz"
export LZ_DATA_MIRROR=$T/badmirror LZ_DATA_CACHE=$T/cache1
expect "shakespeare: a damaged mirror file is refused" 1 "checksum mismatch.*not used" -- \
    "$ROOT/datasets/shakespeare.sh" "$T/s.h5"
[ ! -e "$T/s.h5" ] && [ ! -e "$T/cache1/tinyshakespeare.txt" ] && pass "nothing written from a damaged file" ||
    fail "a damaged file was used"
expect "mnist: a truncated .gz in the mirror is refused" 1 "damaged or truncated gzip, not used" -- \
    "$ROOT/datasets/mnist.sh" "$T/m.h5"
[ ! -e "$T/m.h5" ] && pass "no mnist.h5 from a truncated download" || fail "mnist.h5 written from a truncated download"

if [ -z "$REAL" ]; then
    echo "skip real data: LZ_DATA_MIRROR is not set"
else
    # ---- a truncated file in the cache (an interrupted download) is fetched again ----
    export LZ_DATA_MIRROR=$REAL LZ_DATA_CACHE=$T/cache2
    mkdir -p "$T/cache2"
    head -c 5000 "$REAL/tinyshakespeare.txt" > "$T/cache2/tinyshakespeare.txt"
    if "$ROOT/datasets/shakespeare.sh" "$T/shakespeare.h5" >"$T/out" 2>"$T/err" &&
       grep -q "fetching it again" "$T/err" && grep -q "train: 1003854 tokens" "$T/out" &&
       grep -q "val: 111540 tokens" "$T/out" && grep -q "vocabulary: 65 tokens" "$T/out"; then
        pass "shakespeare: truncated cache refetched from the mirror; 1003854/111540 tokens, 65 characters"
    else fail "shakespeare from the mirror ($(head -c 300 "$T/err"))"; fi
    # ---- the real MNIST, converted and read back ----
    if "$ROOT/datasets/mnist.sh" "$T/mnist.h5" >"$T/out" 2>"$T/err" &&
       "$TOOL" info "$T/mnist.h5" --head 10 --check >"$T/info" 2>&1 &&
       grep -q "train: 60000 images 28x28x1, labels" "$T/info" &&
       grep -q "test: 10000 images 28x28x1, labels" "$T/info" &&
       grep -q "first labels: 5 0 4 1 9 2 1 3 1 4" "$T/info" &&
       grep -q "mean 0.1307 std 0.3081" "$T/info" && grep -q "checked all 60000" "$T/info"; then
        pass "mnist from the mirror: 60000/10000, first labels 5 0 4 1 9 2 1 3 1 4, mean 0.1307 std 0.3081"
    else fail "mnist from the mirror ($(cat "$T/err" "$T/info" 2>/dev/null | head -c 400))"; fi
fi

finish
