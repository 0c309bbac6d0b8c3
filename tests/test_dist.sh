#!/usr/bin/env bash
# Data parallelism under mpirun (2 ranks on the CI's 2 cores): each collective of lib/dist
# against a reference (test_dist.c), the shards' disjointness, and train on a slice of MNIST:
# 2 ranks with a global batch of 128 give the losses and parameters of 1 process with batch
# 128 over 20 steps, resume exactly, and a rank that hangs or dies ends the job with an error.
# Skipped when the build has no MPI (or no mpirun), or there is no MNIST source.
source "$(dirname "$0")/shell_util.sh"
need_programs "$TRAIN" "$EVAL" "$TOOL"
B=$(dirname "$(dirname "$TRAIN")")   # bin/ or build/<variant>/bin -> the build folder
DIST=${LZ_TEST_DIST:-}
[ -n "$DIST" ] || for d in "$ROOT/build/release/tests/test_dist" "$B/tests/test_dist"; do
    [ -x "$d" ] && DIST=$d; done
[ "$TRAIN" = "$ROOT/bin/train" ] || DIST="$B/tests/test_dist"
need_programs "$DIST"
if ! "$DIST" --built >/dev/null; then
    echo "skip test_dist: built without MPI (install libopenmpi-dev, then make clean all)"; exit 0
fi
if ! command -v mpirun >/dev/null; then echo "skip test_dist: no mpirun (openmpi-bin)"; exit 0; fi
# Open MPI: root needs leave to run; 2 ranks on 2 cores need --oversubscribe where there are
# fewer; MPI's own allocations at exit are not ours (LeakSanitizer under make asan)
printf 'leak:libmpi\nleak:libopen-pal\nleak:libopen-rte\nleak:libhwloc\nleak:libevent\nleak:libpmix\nleak:mca_\nleak:libucp\nleak:libucs\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x LSAN_OPTIONS)
# under make asan: Open MPI's plugins leave allocations LeakSanitizer cannot attribute (their
# modules are gone at exit), so leaks are not checked here (memory errors still are; the
# single-process tests check train's own leaks)
if [ -n "${ASAN_OPTIONS:-}" ]; then export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"; MPIRUN+=(-x ASAN_OPTIONS); fi

# ---- the collectives and the shards ----
for np in 1 2 3; do
    if "${MPIRUN[@]}" -np $np "$DIST" >"$T/coll.out" 2>&1 && grep -q "^test_dist: all passed" "$T/coll.out"; then
        pass "collectives vs references at $np rank(s) ($(grep -c '^ok' "$T/coll.out") checks)"
    else fail "collectives at $np rank(s): $(grep -v '^ok' "$T/coll.out" | head -c 800)"; fi
done
# a rank that stops answering: the other's collective times out with a message, and the
# job ends with a non-zero exit; a rank that dies: the launcher ends the job non-zero
t0=$(date +%s)
"${MPIRUN[@]}" -np 2 "$DIST" --hang >"$T/hang.out" 2>&1; rc=$?
t1=$(date +%s)
if [ $rc != 0 ] && grep -q "within 2 s (dist timeout)" "$T/hang.out" && [ $((t1 - t0)) -lt 30 ]; then
    pass "a hanging rank: timeout error, exit $rc after $((t1 - t0)) s"
else fail "hanging rank (exit $rc, $((t1 - t0)) s): $(head -c 600 "$T/hang.out")"; fi
"${MPIRUN[@]}" -np 2 "$DIST" --die >"$T/die.out" 2>&1; rc=$?
[ $rc != 0 ] && pass "a rank that dies ends the job (exit $rc)" || fail "dying rank: exit 0"

source "$ROOT/tests/mnist_slice.sh"
if ! have_mnist; then echo "test_dist: skip the train tests: no MNIST source (LZ_DATA_MIRROR)"; finish; fi
images "$MNIST/train-images-idx3-ubyte.gz" 2560 28 "$T/tri"
labels "$MNIST/train-labels-idx1-ubyte.gz" 2560 "$T/trl"
images "$MNIST/t10k-images-idx3-ubyte.gz" 500 28 "$T/tei"
labels "$MNIST/t10k-labels-idx1-ubyte.gz" 500 "$T/tel"
"$TOOL" idx "$T/mnist.h5" --split train "$T/tri" "$T/trl" --split test "$T/tei" "$T/tel" \
    --classes 0,1,2,3,4,5,6,7,8,9 >/dev/null || { echo "FAIL could not make the MNIST slice"; exit 1; }
cd "$T" || exit 1
cat >dp.yaml <<'EOF'
name: dp
seed: 3
data:
  path: mnist.h5
  batch_size: 128
  eval_batch_size: 100
  normalize: {mean: [0.1307], std: [0.3081]}
model: {type: mlp, hidden: [64]}
optimizer: {name: adam, lr: 1e-3}
schedule: {name: constant}
train: {steps: 20, log_every: 1, eval_every: 10, checkpoint_every: 10}
dist: {bucket_mb: 0.05, timeout_s: 60}
EOF
losses() { grep '"kind":"train"' "$1" | sed 's/.*"loss":\([^,]*\).*/\1/'; }
evals() { grep '"kind":"eval"' "$1" | sed 's/.*"loss":\([^,]*\),"accuracy":\([^,}]*\).*/\1 \2/'; }

# ---- 2 ranks = 1 process ----
"$TRAIN" dp.yaml name=one train.threads=1 >one.out 2>one.err || fail "1 process (exit $?: $(head -c 300 one.err))"
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=two >two.out 2>two.err || fail "2 ranks (exit $?: $(head -c 600 two.err))"
grep -q "^data parallel: 2 ranks (mpi), 64 examples per rank" two.out &&
    [ "$(grep -c '^config ' two.out)" = 1 ] && pass "2 ranks: rank 0 alone prints (64 examples per rank)" ||
    fail "2 ranks output: $(head -c 300 two.out)"
# float32 sums in another order: the losses agree to 1e-5 (relative) over 20 Adam steps
if [ "$(losses runs/one/metrics.jsonl | wc -l)" = 20 ] &&
   paste <(losses runs/one/metrics.jsonl) <(losses runs/two/metrics.jsonl) |
   awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1 || $2 == "") bad = 1; if (d > m) m = d }
        END { printf "max |diff| %.2g\n", m > "/dev/stderr"; exit bad }' 2>"$T/diff"; then
    pass "20 steps: 2 ranks x 64 = 1 process x 128, losses within 1e-5 relative ($(cat "$T/diff"))"
else fail "losses differ: $(paste <(losses runs/one/metrics.jsonl) <(losses runs/two/metrics.jsonl) | head -5 | tr '\n' ' ')"; fi
paste <(evals runs/one/metrics.jsonl) <(evals runs/two/metrics.jsonl) |
    awk 'NF == 4 { n++; d = $1 - $3; if (d < 0) d = -d; if (d > 1e-4 * $1 || $2 != $4) bad = 1 }
         END { exit bad || n != 2 }' && pass "sharded validation: the same loss and accuracy" ||
    fail "validation differs: $(paste <(evals runs/one/metrics.jsonl) <(evals runs/two/metrics.jsonl) | tr '\n' ' ')"
"$DIST" --compare runs/one/last.h5 runs/two/last.h5 1e-5 >cmp.out 2>&1 &&
    pass "the same parameters after 20 steps ($(cat cmp.out))" || fail "parameters: $(head -c 400 cmp.out)"

# ---- exact resume under 2 ranks: 10 steps, then from step 10 to 20 ----
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=half train.steps=10 >half.out 2>half.err &&
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=half --resume runs/half >resume.out 2>resume.err ||
    fail "resume under 2 ranks (exit $?: $(head -c 600 resume.err half.err))"
grep -q "resumed from runs/half/last.h5: step 10" resume.out && cmp <(losses runs/half/metrics.jsonl) <(losses runs/two/metrics.jsonl) >/dev/null &&
    "$DIST" --compare runs/half/last.h5 runs/two/last.h5 0 >cmp.out 2>&1 &&
    pass "exact resume under 2 ranks (10 + 10 steps = 20: the same losses, identical parameters)" ||
    fail "resume: $(head -c 300 cmp.out) $(paste <(losses runs/half/metrics.jsonl) <(losses runs/two/metrics.jsonl) | tail -3 | tr '\n' ' ')"

# ---- errors ----
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=odd data.batch_size=127 >odd.out 2>odd.err; rc=$?
[ $rc = 2 ] && grep -q "data.batch_size 127 does not divide over 2 ranks" odd.err &&
    [ "$(grep -c 'does not divide' odd.err)" = 1 ] && pass "a batch that does not divide: one message, exit 2" ||
    fail "indivisible batch (exit $rc): $(head -c 400 odd.err)"
# rank 1 stopped (SIGSTOP) in mid-run: rank 0 times out, the job ends non-zero, last.h5 stays
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=hang train.steps=100000 dist.timeout_s=3 >hang.out 2>hang.err &
mp=$!
for _ in $(seq 100); do [ -s runs/hang/last.h5 ] && break; sleep 0.2; done
r1=""
for p in $(pgrep -P $mp); do
    grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && r1=$p
done
if [ -n "$r1" ]; then kill -STOP "$r1"; fi
t0=$(date +%s); wait $mp; rc=$?; t1=$(date +%s)
[ -n "$r1" ] && [ $rc != 0 ] && grep -q "rank 0: .*within 3 s (dist timeout)" hang.err && [ $((t1 - t0)) -lt 60 ] &&
    pass "a stopped rank: the others time out with a message, exit $rc" ||
    fail "stopped rank (pid ${r1:-none}, exit $rc): $(head -c 600 hang.err)"
"$EVAL" runs/hang/last.h5 >/dev/null 2>&1 && pass "last.h5 stays intact after the timeout" ||
    fail "last.h5 after the timeout"
# rank 1 killed (SIGKILL): mpirun ends the job at once, non-zero
"${MPIRUN[@]}" -np 2 "$TRAIN" dp.yaml name=kill train.steps=100000 >kill.out 2>kill.err &
mp=$!
for _ in $(seq 100); do [ -s runs/kill/last.h5 ] && break; sleep 0.2; done
r1=""
for p in $(pgrep -P $mp); do
    grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && r1=$p
done
[ -n "$r1" ] && kill -KILL "$r1"
wait $mp; rc=$?
[ -n "$r1" ] && [ $rc != 0 ] && pass "a killed rank ends the job (exit $rc)" || fail "killed rank (pid ${r1:-none}, exit $rc)"
finish
