#!/usr/bin/env bash
# One call on the GPU machine that checks the CUDA backend end to end and brings back logs in
# $OUT: the build, tests/test_cuda, every test with the GPU as default device (8 at a time),
# `train configs/mnist.yaml device=cuda` for an epoch, and bench_cuda with the remaining time.
# That machine has no libyaml (and maybe no cmocka) and no network: first, here, once
#   echo /.deps/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#   mkdir -p .deps && (cd .deps && apt-get download libyaml-0-2 libyaml-dev libcmocka0 libcmocka-dev &&
#     for f in *.deb; do dpkg -x $f root; done)
#   mkdir -p .data && cp -r ../shared/data/* .data/
# then run(command="bash tests/tools/gpu_check.sh", carry=[".deps", ".data"], timeout_s=500).
# DEADLINE (seconds, default 420) bounds the whole script.
set -o pipefail
DEADLINE=${DEADLINE:-420}
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
cp -rn .deps/root/usr/include/* /usr/include/ 2>/dev/null
cp -an .deps/root/usr/lib/x86_64-linux-gnu/* /usr/lib/x86_64-linux-gnu/ 2>/dev/null
ldconfig
export LZ_DATA_MIRROR=$PWD/.data LZ_CUDA_CACHE=/tmp/lzcache
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader
T0=$(date +%s)
( make -j16 all $(ls tests/test_*.c | sed 's|tests/|build/release/tests/|; s|\.c$||') build/release/bench/bench_cuda ) \
    > "$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -30; exit 1; }
echo "built in $(( $(date +%s) - T0 )) s"
timeout 60 build/release/tests/test_cuda 2>&1 | tail -30
B=$PWD/bin L=$PWD/build/release/libleibniz.a LIBS="$(make -s print-libs)"
mkdir -p /tmp/logs && rm -f /tmp/logs/*
run_one() {
    local t=$1 n s rc
    n=$(basename "$t"); s=$(date +%s)
    LZ_DEVICE=cuda LZ_TRAIN=$B/train LZ_EVAL=$B/eval LZ_DATA_TOOL=$B/lz-data LZ_LIB=$L LZ_LDLIBS="$LIBS" \
        timeout 150 "$t" > "/tmp/logs/$n.log" 2>&1
    rc=$?
    echo "$n rc=$rc $(( $(date +%s) - s )) s" >> /tmp/logs/summary
}
export -f run_one; export B L LIBS
ls build/release/tests/test_* tests/test_*.sh | grep -v "test_cuda$" | xargs -P 8 -I{} bash -c 'run_one {}'
sort /tmp/logs/summary | tee "$OUT/summary.txt"
for f in /tmp/logs/*.log; do echo "=================== $f"; cat "$f"; done > "$OUT/suite.log"
grep -h -E "FAILED  \]|ERROR|Failure|error:" /tmp/logs/*.log | sort | uniq -c | sort -rn | head -60
echo "suite done at $(( $(date +%s) - T0 )) s"
make data/mnist.h5 > /dev/null 2>&1
timeout 60 bin/train configs/mnist.yaml device=cuda train.epochs=1 > "$OUT/train_mnist.log" 2>&1
echo "train rc=$?"; tail -8 "$OUT/train_mnist.log"
left=$(( DEADLINE - ($(date +%s) - T0) ))
[ $left -gt 20 ] || exit 0
BENCH_CUDA_STEPS=0.5 timeout $left build/release/bench/bench_cuda > "$OUT/bench.log" 2>&1
echo "bench rc=$?"; grep BENCH "$OUT/bench.log" | head -60; grep -v BENCH "$OUT/bench.log" | head -20
