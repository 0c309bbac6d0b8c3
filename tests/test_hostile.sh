#!/usr/bin/env bash
# Corrupted checkpoints and datasets (tests/data/hostile/, README there) through eval and
# train: each is refused with one line on stderr naming the file, exit 2, within a few
# seconds; never a crash (libhdf5 crashed or hung on most of them before issue 20).
source "$(dirname "$0")/shell_util.sh"
H=$ROOT/tests/data/hostile
need_programs "$TRAIN" "$EVAL"
cp "$H"/* "$T/"
cd "$T" || exit 1
unset LZ_H5_TIMEOUT LZ_CKPT_UNVERIFIED LZ_CKPT_STRICT

# within NAME SECONDS -- command...: expect exit 2, one line naming the file, in time
within() {
    local name=$1 limit=$2 file=$3
    shift 4
    local t0=$SECONDS
    timeout -s KILL 60 "$@" >"$T/out" 2>"$T/err"
    local rc=$? took=$((SECONDS - t0)) lines
    lines=$(wc -l < "$T/err")
    if [ $rc = 2 ] && [ "$lines" = 1 ] && grep -qF -- "$file" "$T/err" && [ $took -le "$limit" ]; then
        pass "$name: exit 2 in ${took}s: $(cut -c1-150 "$T/err")"
    else fail "$name (exit $rc in ${took}s, $lines lines: $(head -c 400 "$T/err"))"; fi
}

n=0
for f in ckpt_*.h5; do
    within "eval $f" 10 "$f" -- "$EVAL" "$f" --json
    within "train resume from $f" 10 "$f" -- "$TRAIN" --resume "$f"
    n=$((n + 1))
done
for f in dataset_*.h5; do
    within "train on $f" 10 "$f" -- "$TRAIN" train.yaml "data.path=$f"
    n=$((n + 1))
done
[ $n -ge 8 ] && pass "$n hostile files" || fail "only $n hostile files in $H"

# a strict reader refuses checkpoints that carry no checksum (older leibniz, other tools)
LZ_CKPT_STRICT=1 within "LZ_CKPT_STRICT=1 eval of an unverified file" 10 ckpt_crash_0.h5 -- \
    "$EVAL" ckpt_crash_0.h5 --json
finish
