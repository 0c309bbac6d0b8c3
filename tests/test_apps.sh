#!/usr/bin/env bash
# The train and eval programs end to end on a slice of MNIST (512 training and 256 test
# images cut from the IDX files of $LZ_DATA_MIRROR; skipped when there is none): the run
# folder's files, a falling loss, eval reproducing train's accuracy, exact resume (after a
# finished epoch and after Ctrl-C in mid-epoch), SIGINT handling, the NaN guard, and the
# message and exit code of every error a user can cause.
source "$(dirname "$0")/shell_util.sh"
CFG=$ROOT/tests/data/apps
need_programs "$TRAIN" "$EVAL" "$TOOL"
source "$ROOT/tests/mnist_slice.sh"
if ! have_mnist; then
    echo "skip test_apps: no MNIST source (set LZ_DATA_MIRROR to a folder with mnist/*.gz)"
    exit 0
fi

# ---- the data: IDX slices converted by lz-data ----
images "$MNIST/train-images-idx3-ubyte.gz" 512 28 "$T/tri"
labels "$MNIST/train-labels-idx1-ubyte.gz" 512 "$T/trl"
images "$MNIST/t10k-images-idx3-ubyte.gz" 256 28 "$T/tei"
labels "$MNIST/t10k-labels-idx1-ubyte.gz" 256 "$T/tel"
images "$MNIST/t10k-images-idx3-ubyte.gz" 64 14 "$T/te14"
labels "$MNIST/t10k-labels-idx1-ubyte.gz" 64 "$T/tel14"
C10=--classes=0,1,2,3,4,5,6,7,8,9
"$TOOL" idx "$T/mnist_small.h5" --split train "$T/tri" "$T/trl" --split test "$T/tei" "$T/tel" \
    --classes 0,1,2,3,4,5,6,7,8,9 >/dev/null &&
"$TOOL" idx "$T/mnist14.h5" --split test "$T/te14" "$T/tel14" --classes 0,1,2,3,4,5,6,7,8,9 >/dev/null ||
    { echo "FAIL could not make the MNIST slice"; exit 1; }
cp "$CFG"/*.yaml "$T/"
cd "$T" || exit 1

json() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$2"; }   # a scalar field of a JSON line

# ---- a whole run ----
if "$TRAIN" tiny.yaml >"$T/train.out" 2>"$T/train.err"; then pass "train tiny.yaml exits 0"
else fail "train tiny.yaml (exit $?: $(head -c 400 "$T/train.err"))"; fi
R=runs/tiny
missing=""
for f in config.yaml last.h5 best.h5 metrics.jsonl curves.png samples.png; do
    [ -s "$R/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass "run folder has config.yaml, last.h5, best.h5, metrics.jsonl, curves.png, samples.png" ||
    fail "run folder lacks$missing"
grep -q "^name: tiny" "$R/config.yaml" && grep -q "log_format: jsonl" "$R/config.yaml" &&
    pass "config.yaml is the effective config" || fail "config.yaml is not the effective config"
grep -q "parameters: 50890 (50890 trainable)" "$T/train.out" && grep -q "float32\[1,64\]" "$T/train.out" &&
    grep -q "^  out_dir: runs" "$T/train.out" &&
    pass "prints the effective config and the model summary (shapes, 50890 parameters)" ||
    fail "config or summary missing from the output"
# not a terminal: plain periodic lines, one per log_every (4) steps, 32 steps in all
[ "$(grep -c '^epoch .* step [0-9]*/32 ' "$T/train.out")" = 8 ] && ! grep -q $'\r' "$T/train.out" &&
    pass "plain progress lines when the output is not a terminal" || fail "progress lines ($(grep -c '^epoch' "$T/train.out"))"
first=$(grep '"kind":"train"' "$R/metrics.jsonl" | head -1 | sed 's/.*"loss":\([^,]*\).*/\1/')
last=$(grep '"kind":"train"' "$R/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/')
if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a / 2) }'; then pass "loss falls ($first -> $last)"
else fail "loss does not fall ($first -> $last)"; fi
[ "$(grep -c '"kind":"eval"' "$R/metrics.jsonl")" = 2 ] && pass "validation at the end of each epoch" ||
    fail "expected 2 eval records in metrics.jsonl"
best=$(sed -n 's/^best test accuracy \([0-9.]*\)%.*/\1/p' "$T/train.out")
grep -q "^time .* samples/s" "$T/train.out" && [ -n "$best" ] && pass "final summary (best accuracy $best%, time, throughput)" ||
    fail "final summary missing"

# ---- eval reproduces it ----
if "$EVAL" "$R/best.h5" --json >"$T/eval.json" 2>"$T/err"; then
    acc=$(json accuracy "$T/eval.json") rep=$(json reported_accuracy "$T/eval.json")
    pct=$(awk -v a="$acc" 'BEGIN { printf "%.2f", 100 * a }')
    [ "$acc" = "$rep" ] && [ "$pct" = "$best" ] && pass "eval best.h5 reproduces train's accuracy ($pct%)" ||
        fail "eval accuracy $acc ($pct%), train reported $rep ($best%)"
else fail "eval --json (exit $?: $(head -c 300 "$T/err"))"; fi
if "$EVAL" "$R/best.h5" >"$T/eval.txt" 2>"$T/err" && grep -q "^accuracy $best%" "$T/eval.txt" &&
   grep -q "precision *recall *f1 *support" "$T/eval.txt" && grep -q "confusion matrix" "$T/eval.txt" &&
   [ -s "$R/confusion.png" ]; then pass "eval prints loss, accuracy, per-class P/R/F1, the confusion matrix; writes confusion.png"
else fail "eval text output ($(head -c 300 "$T/err"))"; fi
mkdir -p "$T/plots"
"$EVAL" "$R" --out "$T/plots" --split train --batch-size 100 >"$T/out" 2>&1 && [ -s "$T/plots/confusion.png" ] &&
    grep -q "split train: 512 examples" "$T/out" && pass "eval RUN_DIR --split --batch-size --out" ||
    fail "eval with options ($(head -c 300 "$T/out"))"
if "$EVAL" "$R/best.h5" --image "$R/samples.png" >"$T/out" 2>"$T/err" && [ "$(grep -c '^  [123]\. ' "$T/out")" = 3 ]; then
    pass "eval --image prints the top 3 classes"
else fail "eval --image ($(head -c 300 "$T/err"))"; fi

# a real digit as a 28x28 gray PNG (written with python3's zlib when there is a python3):
# test image 2 of MNIST is a clear "1"
if command -v python3 >/dev/null; then
    python3 - "$T/tei" "$T/one.png" <<'PY'
import struct, sys, zlib
img = open(sys.argv[1], 'rb').read()[16 + 2 * 784:16 + 3 * 784]
raw = b''.join(b'\0' + img[r * 28:(r + 1) * 28] for r in range(28))
chunk = lambda t, b: struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b) & 0xffffffff)
open(sys.argv[2], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 28, 28, 8, 0, 0, 0, 0))
                              + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
PY
    "$EVAL" "$R/best.h5" --image "$T/one.png" --json >"$T/out" 2>&1 &&
        grep -q '"top":\[{"class":1,"name":"1","probability":0\.[5-9]' "$T/out" &&
        pass "eval --image classifies a 28x28 PNG of a 1 as 1" || fail "eval --image on a digit ($(head -c 300 "$T/out"))"
else echo "skip eval --image on a digit: no python3 to write the PNG"; fi

# ---- exact resume: 2 epochs straight == 1 epoch, then 1 more ----
"$TRAIN" tiny.yaml train.out_dir=split train.epochs=1 >/dev/null 2>&1 &&
    "$TRAIN" tiny.yaml train.out_dir=split --resume split/tiny >"$T/out" 2>&1
d1=$("$EVAL" "$R/last.h5" --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
d2=$("$EVAL" split/tiny/last.h5 --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
[ -n "$d1" ] && [ "$d1" = "$d2" ] && grep -q "resumed from split/tiny/last.h5: step 16" "$T/out" &&
    pass "resume after epoch 1 gives the same parameters bit for bit ($d1)" || fail "resume: $d1 != $d2"

"$TRAIN" tiny_dropout.yaml train.out_dir=dA >/dev/null 2>&1 && "$TRAIN" tiny_dropout.yaml train.out_dir=dB train.epochs=1 >/dev/null 2>&1 &&
    cp dB/tiny_dropout/last.h5 epoch1.h5 && "$TRAIN" tiny_dropout.yaml train.out_dir=dB --resume dB/tiny_dropout >/dev/null 2>&1
d1=$("$EVAL" dA/tiny_dropout/last.h5 --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
d2=$("$EVAL" dB/tiny_dropout/last.h5 --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
[ -n "$d1" ] && [ "$d1" = "$d2" ] && pass "resume is exact with dropout and batch norm ($d1)" || fail "resume with dropout: $d1 != $d2"
[ "$(grep -c '"kind":"eval"' dB/tiny_dropout/metrics.jsonl)" = 2 ] && pass "a resumed run continues metrics.jsonl" ||
    fail "metrics.jsonl of the resumed run"
# resuming again from the epoch-1 checkpoint drops the later records before going on
"$TRAIN" tiny_dropout.yaml train.out_dir=dB --resume epoch1.h5 >/dev/null 2>&1
[ "$(grep -c '"kind":"eval"' dB/tiny_dropout/metrics.jsonl)" = 2 ] &&
    [ "$(grep -c '"kind":"train"' dB/tiny_dropout/metrics.jsonl)" = 8 ] &&
    pass "resuming from an earlier checkpoint rewinds metrics.jsonl to its step" ||
    fail "metrics.jsonl after resuming from an earlier checkpoint ($(grep -c . dB/tiny_dropout/metrics.jsonl) lines)"

# gradient accumulation: 16 batches an epoch in steps of 3 (the last step of an epoch takes 1)
"$TRAIN" tiny.yaml train.grad_accum=3 train.out_dir=gA >"$T/ga.out" 2>&1 &&
    "$TRAIN" tiny.yaml train.grad_accum=3 train.out_dir=gB train.epochs=1 >/dev/null 2>&1 &&
    "$TRAIN" tiny.yaml train.grad_accum=3 train.out_dir=gB --resume gB/tiny >/dev/null 2>&1
d1=$("$EVAL" gA/tiny/last.h5 --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
d2=$("$EVAL" gB/tiny/last.h5 --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
grep -q "^done: 12 steps" "$T/ga.out" && [ -n "$d1" ] && [ "$d1" = "$d2" ] &&
    pass "grad_accum 3: 6 steps an epoch, resume exact" || fail "grad_accum ($d1 / $d2: $(tail -c 200 "$T/ga.out"))"

# ---- a checkpoint written between validations says which step its accuracy is from ----
# periodic last.h5 every 3 steps, validations every 5; killed outright, last.h5 is the last
# periodic one, usually written between two validations
"$TRAIN" tiny.yaml train.out_dir=between train.steps=1000000 train.eval_every=5 train.checkpoint_every=3 \
    >"$T/bw.out" 2>&1 &
pid=$!
for _ in $(seq 600); do
    grep -q '"kind":"train","step":12,' between/tiny/metrics.jsonl 2>/dev/null && break
    sleep 0.05
done
{ kill -KILL $pid; wait $pid; } 2>/dev/null
"$EVAL" between/tiny/last.h5 >"$T/bw.eval" 2>&1
"$EVAL" between/tiny/last.h5 --json >"$T/bw.json" 2>&1
at=$(sed -n "s/^(train's last validation before this checkpoint, at step \([0-9]*\), gave.*/\1/p" "$T/bw.eval")
if grep -q "(train reported .* for this checkpoint)" "$T/bw.eval"; then
    grep -q '"reported_accuracy"' "$T/bw.json" && pass "a checkpoint written at a validation step reports that validation" ||
        fail "reported_accuracy missing from eval --json ($(head -c 300 "$T/bw.json"))"
elif [ -n "$at" ] && [ $((at % 5)) = 0 ] && grep -q "\"kind\":\"eval\",\"step\":$at," between/tiny/metrics.jsonl &&
     ! grep -q '"reported_accuracy"' "$T/bw.json"; then
    pass "a checkpoint written between validations says its accuracy is from step $at"
else fail "accuracy of a checkpoint between validations ($(sed -n 3,6p "$T/bw.eval"))"; fi

# ---- Ctrl-C: the step finishes, last.h5 is written, exit 130; resuming is exact ----
"$TRAIN" tiny.yaml train.out_dir=sig train.steps=1000000 data.val_split=null >"$T/sig.out" 2>"$T/sig.err" &
pid=$!
for _ in $(seq 600); do
    [ "$(cat sig/tiny/metrics.jsonl 2>/dev/null | wc -l)" -ge 3 ] && break
    sleep 0.05
done
kill -INT $pid
wait $pid
rc=$?
s=$(sed -n 's/.*interrupted at step \([0-9]*\).*/\1/p' "$T/sig.err")
if [ $rc = 130 ] && [ -n "$s" ] && [ -s sig/tiny/last.h5 ] && ! ls sig/tiny/*.tmp-* >/dev/null 2>&1; then
    pass "SIGINT: exit 130 at step $s, last.h5 written"
else fail "SIGINT (exit $rc, step '$s': $(head -c 300 "$T/sig.err"))"; fi
if [ -n "$s" ]; then
    n=$((s + 7))
    "$TRAIN" tiny.yaml train.out_dir=sig train.steps=$n data.val_split=null --resume sig/tiny >/dev/null 2>&1
    "$TRAIN" tiny.yaml train.out_dir=straight train.steps=$n data.val_split=null >/dev/null 2>&1
    d1=$("$EVAL" sig/tiny/last.h5 --data mnist_small.h5 --split test --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
    d2=$("$EVAL" straight/tiny/last.h5 --data mnist_small.h5 --split test --json 2>/dev/null | sed 's/.*"params_digest":"\([0-9a-f]*\)".*/\1/')
    [ -n "$d1" ] && [ "$d1" = "$d2" ] && pass "resume after Ctrl-C in mid-epoch (step $s of $n) is exact" ||
        fail "resume after Ctrl-C: $d1 != $d2"
fi
# a second Ctrl-C exits at once; the checkpoint left behind is whole
"$TRAIN" tiny.yaml train.out_dir=sig2 train.steps=1000000 data.val_split=null train.checkpoint_every=3 >/dev/null 2>"$T/sig2.err" &
pid=$!
for _ in $(seq 600); do
    [ "$(cat sig2/tiny/metrics.jsonl 2>/dev/null | wc -l)" -ge 3 ] && break
    sleep 0.05
done
kill -INT $pid; kill -INT $pid
wait $pid
rc=$?
if [ $rc = 130 ] && { grep -q "interrupted again" "$T/sig2.err" || grep -q "interrupted at step" "$T/sig2.err"; } &&
   "$EVAL" sig2/tiny/last.h5 --data mnist_small.h5 --split test >/dev/null 2>&1; then
    pass "a second SIGINT exits 130 at once; last.h5 still loads"
else fail "second SIGINT (exit $rc: $(head -c 300 "$T/sig2.err"))"; fi

# ---- the NaN guard ----
expect "NaN loss: exit 1, names the step and the last good checkpoint" 1 \
    "loss is (NaN|infinite) at step [0-9]+ .*last good checkpoint is runs/tiny_nan/last.h5 \(step [0-9]+\)" -- "$TRAIN" nan.yaml
ns=$(sed -n 's/.*at step \([0-9]*\) .*/\1/p' "$T/err") cs=$(sed -n 's/.*last.h5 (step \([0-9]*\)).*/\1/p' "$T/err")
"$EVAL" runs/tiny_nan/last.h5 --json >"$T/out" 2>&1 && [ -n "$ns" ] && [ "$cs" -lt "$ns" ] &&
    pass "the checkpoint of step $cs (before the NaN at step $ns) is kept and loads" ||
    fail "last good checkpoint ($(head -c 300 "$T/out"))"

# ---- fine-tuning from the run's checkpoint: frozen layers, LoRA adapters, a fresh head ----
"$TRAIN" tiny.yaml train.out_dir=ft finetune.init_from="$R/best.h5" 'finetune.freeze=["fc1.*"]' train.epochs=1 >"$T/out" 2>&1 &&
    grep -q "finetune: loaded 4 arrays" "$T/out" && grep -q "parameters: 50890 (650 trainable)" "$T/out" &&
    pass "finetune: init_from and freeze (650 of 50890 parameters trained)" || fail "finetune freeze ($(tail -c 300 "$T/out"))"
"$TRAIN" tiny.yaml train.out_dir=lora finetune.init_from="$R/best.h5" finetune.lora.rank=4 train.epochs=1 >"$T/out" 2>&1 &&
    grep -q "lora_linear" "$T/out" && "$EVAL" lora/tiny/best.h5 --json >"$T/lora.json" 2>&1 &&
    [ "$(json accuracy "$T/lora.json")" = "$(json reported_accuracy "$T/lora.json")" ] &&
    pass "finetune: LoRA adapters train, and eval rebuilds them" || fail "LoRA ($(tail -c 300 "$T/out"))"
"$TRAIN" tiny.yaml train.out_dir=head finetune.init_from="$R/best.h5" finetune.head.name=head train.epochs=1 >"$T/out" 2>&1 &&
    grep -q "loaded 2 arrays from .*re-initialised head" "$T/out" && pass "finetune: head.name is re-initialised, not loaded" ||
    fail "finetune head ($(tail -c 300 "$T/out"))"
expect "finetune from another model (strict)" 2 "init_from .* does not fit the model \(finetune.strict\): mismatch: fc1.weight is float32\[32,784\] in the model but float32\[64,784\] given; " \
    -- "$TRAIN" other_model.yaml finetune.init_from="$R/best.h5"
expect "finetune.freeze matching nothing" 2 "finetune.freeze: 'nope\*' matches no parameter" -- "$TRAIN" tiny.yaml 'finetune.freeze=["nope*"]'
expect "finetune.lora.targets matching nothing" 2 "no linear layer matches \"zzz\"" -- "$TRAIN" tiny.yaml finetune.lora.rank=2 'finetune.lora.targets=["zzz"]'

# ---- a CNN runs end to end ----
"$TRAIN" tiny_cnn.yaml train.steps=4 >"$T/out" 2>&1 && "$EVAL" runs/tiny_cnn/best.h5 >/dev/null 2>&1 &&
    grep -q "max_pool2d" "$T/out" && pass "tiny CNN: train and eval" || fail "tiny CNN ($(tail -c 300 "$T/out"))"

# ---- every error a user can cause: one message, exit 2 (bad usage/config/input) ----
expect "train without arguments: usage" 2 "^usage: train" -- "$TRAIN"
expect "train unknown option" 2 "unknown option '--frobnicate'" -- "$TRAIN" tiny.yaml --frobnicate
expect "missing config" 2 "nope.yaml: cannot read the config: No such file or directory" -- "$TRAIN" nope.yaml
expect "YAML syntax error with file:line:col" 2 "bad_yaml.yaml:[0-9]+:[0-9]+: " -- "$TRAIN" bad_yaml.yaml
expect "unknown key with file:line:col and a suggestion" 2 "bad_key.yaml:6:1: unknown .*key 'optimiser'.*did you mean 'optimizer'" -- "$TRAIN" bad_key.yaml
expect "bad override" 2 "command line 'optimizer.lr=fast'" -- "$TRAIN" tiny.yaml optimizer.lr=fast
expect "missing data file names the command that makes it" 2 \
    "data file data/mnist.h5 \(data.path, command line 'data.path=data/mnist.h5'\) does not exist; make it with '.*datasets/mnist.sh data/mnist.h5'" \
    -- "$TRAIN" tiny.yaml data.path=data/mnist.h5
expect "missing validation split" 2 "mnist_small.h5.*valid.*data.val_split" -- "$TRAIN" tiny.yaml data.val_split=valid
expect "model output does not match the classes (model.out)" 2 "does not fit the data.*10 classes" -- "$TRAIN" tiny.yaml model.out=5
expect "sequential model without flatten" 2 "does not fit the data.*add a flatten layer" -- "$TRAIN" no_flatten.yaml
touch "$T/afile"
expect "unwritable output folder" 2 "cannot create the output folder $T/afile/runs: Not a directory \(train.out_dir\)" \
    -- "$TRAIN" tiny.yaml train.out_dir="$T/afile/runs"
expect "resume from a checkpoint of another model" 2 "checkpoint is from another model: .*last.h5: params: 3 shape mismatches \(fc1.weight: checkpoint float32\[64,784\], model float32\[32,784\]" \
    -- "$TRAIN" other_model.yaml --resume "$R/last.h5"
expect "resume from a missing checkpoint" 2 "--resume: nowhere does not exist" -- "$TRAIN" tiny.yaml --resume nowhere
expect "resume with data of another shape" 2 "trained on 1x28x28 images with 10 classes, but mnist14.h5 has 1x14x14" \
    -- "$TRAIN" tiny.yaml data.path=mnist14.h5 data.train_split=test data.val_split=null --resume "$R"
expect "eval without arguments: usage" 2 "^usage: eval" -- "$EVAL"
expect "eval missing checkpoint" 2 "nope.h5: cannot open" -- "$EVAL" nope.h5
expect "eval a file that is not a checkpoint" 2 "tiny.yaml: not an HDF5 file" -- "$EVAL" tiny.yaml
expect "eval a checkpoint with another model's config" 2 "does not match the model of other_model.yaml.*shape mismatch" \
    -- "$EVAL" "$R/best.h5" --config other_model.yaml
expect "eval on data of another shape" 2 "mnist14.h5: split 'test' has 1x14x14 images.*takes 1x28x28" \
    -- "$EVAL" "$R/best.h5" --data mnist14.h5
expect "eval missing data file" 2 "data file nope.h5 does not exist" -- "$EVAL" "$R/best.h5" --data nope.h5
expect "eval bad --batch-size" 2 "expected a positive integer, got 'x'" -- "$EVAL" "$R/best.h5" --batch-size x
expect "eval missing image" 2 "nope.png: cannot read the image" -- "$EVAL" "$R/best.h5" --image nope.png
expect "eval an image that is not a PNG" 2 "tiny.yaml" -- "$EVAL" "$R/best.h5" --image tiny.yaml
expect "eval unwritable --out" 2 "cannot write $T/afile/x/confusion.png: the folder $T/afile/x does not exist \(--out\)" -- "$EVAL" "$R/best.h5" --out "$T/afile/x"
expect "train.log_format csv is refused, not ignored" 2 "log_format 'csv' is not supported" -- "$TRAIN" tiny.yaml train.log_format=csv

# ---- a character-level language model (model.type transformer) on a tiny text ----
for i in $(seq 300); do echo "ROMEO: the quick brown fox jumps over the lazy dog, and juliet sees it."; done > "$T/tiny.txt"
"$TOOL" text "$T/tiny_text.h5" "$T/tiny.txt" --val-fraction 0.1 >/dev/null || fail "lz-data text"
cat > "$T/tiny_gpt.yaml" <<'YAML'
name: tiny_gpt
seed: 3
data: {path: tiny_text.h5, val_split: val, batch_size: 8}
model: {type: transformer, n_layers: 2, n_heads: 2, d_model: 32, context: 32}
optimizer: {name: adamw, lr: 3e-3, betas: [0.9, 0.99], weight_decay: 0.1}
schedule: {name: warmup_cosine, warmup_steps: 5, min_lr: 1e-4}
train: {steps: 60, eval_every: 30, checkpoint_every: 30, log_every: 10, clip_grad_norm: 1.0}
YAML
if "$TRAIN" tiny_gpt.yaml >"$T/gpt.out" 2>"$T/gpt.err"; then pass "train a tiny transformer on text exits 0"
else fail "train tiny_gpt.yaml (exit $?: $(head -c 400 "$T/gpt.err"))"; fi
G=runs/tiny_gpt
missing=""
for f in config.yaml last.h5 best.h5 metrics.jsonl curves.png; do [ -s "$G/$f" ] || missing="$missing $f"; done
[ -z "$missing" ] && pass "text run folder has config.yaml, last.h5, best.h5, metrics.jsonl, curves.png" ||
    fail "text run folder lacks$missing"
grep -q "blocks.1 *transformer_block" "$T/gpt.out" && grep -q "step 60/60 .* tokens/s" "$T/gpt.out" &&
    grep -q "^time .* tokens/s" "$T/gpt.out" &&
    pass "summary lists each block; progress and summary report tokens/s" || fail "transformer summary or tokens/s missing"
first=$(grep '"kind":"train"' "$G/metrics.jsonl" | head -1 | sed 's/.*"loss":\([^,]*\).*/\1/')
last=$(grep '"kind":"train"' "$G/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a * 0.7) }' && pass "text loss falls ($first -> $last)" ||
    fail "text loss does not fall ($first -> $last)"
bestloss=$(sed -n 's/^best val loss \([0-9.]*\) .*/\1/p' "$T/gpt.out")
if "$EVAL" "$G/best.h5" >"$T/out" 2>"$T/err" && grep -q "^loss $bestloss nats/char" "$T/out" &&
   grep -q "^perplexity " "$T/out" && grep -q "^bits per character " "$T/out"; then
    pass "eval of a language model: loss ($bestloss, as train reported), perplexity, bits per character"
else fail "eval text loss ($bestloss; $(head -c 300 "$T/out") $(head -c 300 "$T/err"))"; fi
gen() { "$EVAL" "$G/best.h5" --prompt "ROMEO:" --tokens 80 --temperature 0.8 --top-k 10 "$@"; }
if gen --seed 1 >"$T/s1" 2>"$T/e1" && gen --seed 1 >"$T/s1b" 2>/dev/null && gen --seed 1 --no-cache >"$T/s1c" 2>/dev/null &&
   gen --seed 2 >"$T/s2" 2>/dev/null && cmp -s "$T/s1" "$T/s1b" && cmp -s "$T/s1" "$T/s1c" && ! cmp -s "$T/s1" "$T/s2" &&
   head -c 6 "$T/s1" | grep -q "ROMEO:" && grep -q "^eval: 80 tokens in .* tokens/s (key/value cache)" "$T/e1" &&
   [ "$(head -c -1 "$T/s1" | wc -m)" = 86 ]; then
    pass "eval --prompt: deterministic for a seed, the key/value cache gives the recomputed text, tokens/s"
else fail "eval --prompt ($(head -c 200 "$T/s1") / $(head -c 200 "$T/e1"))"; fi
gen --seed 1 --json >"$T/sj" 2>/dev/null && grep -q '"tokens_per_s":' "$T/sj" && pass "eval --prompt --json" || fail "eval --prompt --json"
# exact resume of a text run: 30 steps, then 30 more, as the 60 straight above
"$TRAIN" tiny_gpt.yaml name=gpt_resume train.steps=30 schedule.total_steps=60 >/dev/null 2>&1 &&
"$TRAIN" tiny_gpt.yaml name=gpt_resume train.steps=60 schedule.total_steps=60 --resume runs/gpt_resume >/dev/null 2>"$T/err" &&
"$EVAL" runs/gpt_resume/last.h5 --json >"$T/r1" 2>/dev/null && "$EVAL" "$G/last.h5" --json >"$T/r2" 2>/dev/null &&
[ -n "$(json loss "$T/r1")" ] && [ "$(json loss "$T/r1")" = "$(json loss "$T/r2")" ] &&
    pass "a text run resumed after 30 steps ends where the straight run does (val loss $(json loss "$T/r1"))" ||
    fail "text resume ($(json loss "$T/r1") vs $(json loss "$T/r2"); $(head -c 300 "$T/err"))"
expect "eval --prompt with a character outside the vocabulary" 2 "the character 'Z' \(at byte 0\) is not in the model's vocabulary" \
    -- "$EVAL" "$G/best.h5" --prompt "Zebra"
expect "eval --prompt on an image classifier" 2 "--prompt needs a language model" -- "$EVAL" "$R/best.h5" --prompt "hi"
expect "eval bad --temperature" 2 "expected a number >= 0, got '-1'" -- "$EVAL" "$G/best.h5" --prompt "R" --temperature -1
expect "a transformer on image data" 2 "holds images, but model.type 'transformer' is a language model" \
    -- "$TRAIN" tiny_gpt.yaml data.path=mnist_small.h5 data.val_split=test
expect "an image model on text" 2 "split .train. holds text" \
    -- "$TRAIN" tiny.yaml data.path=tiny_text.h5 data.val_split=val
expect "data.context beyond model.context" 2 "data.context 64 exceeds model.context 32" \
    -- "$TRAIN" tiny_gpt.yaml data.context=64

finish
