#!/usr/bin/env bash
# Memory limits a user sets: train.memory_limit (the allocator's limit, reached from a
# config) ends a run with a message naming the op, and an address-space cap too small for
# OpenBLAS's start-up buffers is a message before main instead of a spin for ever
# (apps/preflight.h). Both from issue 20.
source "$(dirname "$0")/shell_util.sh"
need_programs "$TRAIN" "$EVAL" "$TOOL"
source "$ROOT/tests/mnist_slice.sh"
if ! have_mnist; then
    echo "skip test_limits: no MNIST source (set LZ_DATA_MIRROR to a folder with mnist/*.gz)"
    exit 0
fi
images "$MNIST/train-images-idx3-ubyte.gz" 256 28 "$T/tri"
labels "$MNIST/train-labels-idx1-ubyte.gz" 256 "$T/trl"
"$TOOL" idx "$T/small.h5" --split train "$T/tri" "$T/trl" --split test "$T/tri" "$T/trl" \
    --classes 0,1,2,3,4,5,6,7,8,9 >/dev/null || { fail "lz-data"; finish; }
cat > "$T/lim.yaml" <<YAML
name: lim
data: {path: $T/small.h5, batch_size: 64}
model: {type: mlp, hidden: [2048]}
optimizer: {name: adam}
train: {epochs: 1, threads: 1, out_dir: $T/runs}
YAML
cd "$T" || exit 1
# a 2048-wide layer's weights are 6 MiB: a 4 MiB limit stops the run with a message
expect "train.memory_limit=4: out of memory, naming the limit" 1 "out of memory.*limit of 4194304 bytes" -- \
    "$TRAIN" lim.yaml train.memory_limit=4
if "$TRAIN" lim.yaml train.memory_limit=512 >"$T/out" 2>"$T/err"; then pass "train.memory_limit=512: the same run trains"
else fail "train.memory_limit=512: $(head -c 300 "$T/err")"; fi
expect "train.memory_limit=0 is out of range" 2 "memory_limit" -- "$TRAIN" lim.yaml train.memory_limit=0
# the address-space cap: sanitizer builds reserve terabytes of shadow memory, so not there
if ldd "$TRAIN" 2>/dev/null | grep -q libasan; then
    echo "skip the ulimit -v check under AddressSanitizer"
else
    t0=$SECONDS
    (ulimit -v 150000; exec timeout -s KILL 20 "$TRAIN" lim.yaml) >"$T/out" 2>"$T/err"
    rc=$?
    # ours (exit 1), or with the CUDA libraries linked, the loader's own when it cannot map
    # them (exit 127): either way a message at once, not a spin
    if { { [ $rc = 1 ] && grep -q "address-space limit (ulimit -v) is 146 MiB" "$T/err"; } ||
         { [ $rc = 127 ] && grep -q "error while loading shared libraries" "$T/err"; }; } &&
       [ $((SECONDS - t0)) -le 5 ]; then
        pass "ulimit -v 150000: a message and exit at once ($(head -c 120 "$T/err"))"
    else fail "ulimit -v 150000: exit $rc in $((SECONDS - t0)) s: $(head -c 300 "$T/err")"; fi
fi
finish
