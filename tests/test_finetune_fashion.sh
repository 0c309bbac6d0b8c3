#!/usr/bin/env bash
# Transfer learning from YAML, end to end on MNIST slices (skipped without $LZ_DATA_MIRROR):
# configs/finetune_fashion.yaml itself, pointed at a small CNN pretrained on digits and at a
# new task (the same kind of images labelled even/odd: 2 classes, so the head must be
# replaced): init_from, the re-initialised head, the convolutions frozen by pattern (bitwise
# unchanged after training and after a resume), eval of the result; then every loading
# mismatch (missing, unexpected, mis-shaped names, all in one message) and the other errors
# of the finetune section, each one line with exit 2.
source "$(dirname "$0")/shell_util.sh"
LIB=${LZ_LIB:-$ROOT/build/release/libleibniz.a}
need_programs "$TRAIN" "$EVAL" "$TOOL" "$LIB"
source "$ROOT/tests/mnist_slice.sh"
if ! have_mnist; then
    echo "skip test_finetune_fashion: no MNIST source (set LZ_DATA_MIRROR to a folder with mnist/*.gz)"
    exit 0
fi
libs=${LZ_LDLIBS:-$(make -s --no-print-directory -C "$ROOT" print-libs)}
cc -std=c11 -Wall -Wextra -Werror -I"$ROOT/lib" "$ROOT/tests/tools/ckpt_cmp.c" "$LIB" $libs -lm -o "$T/ckpt_cmp" ||
    { echo "FAIL tests/tools/ckpt_cmp.c does not compile"; exit 1; }

# digits (pretraining) and the new task: later images of the same files, labels mod 2
images "$MNIST/train-images-idx3-ubyte.gz" 512 28 "$T/tri"
labels "$MNIST/train-labels-idx1-ubyte.gz" 512 "$T/trl"
images "$MNIST/t10k-images-idx3-ubyte.gz" 256 28 "$T/tei"
labels "$MNIST/t10k-labels-idx1-ubyte.gz" 256 "$T/tel"
parity() { tr '\000\001\002\003\004\005\006\007\010\011' '\000\001\000\001\000\001\000\001\000\001'; }
{ head -c 8 "$T/trl"; tail -c +9 "$T/trl" | parity; } > "$T/trp"
{ head -c 8 "$T/tel"; tail -c +9 "$T/tel" | parity; } > "$T/tep"
"$TOOL" idx "$T/digits.h5" --split train "$T/tri" "$T/trl" --split test "$T/tei" "$T/tel" \
    --classes 0,1,2,3,4,5,6,7,8,9 >/dev/null &&
"$TOOL" idx "$T/parity.h5" --split train "$T/tri" "$T/trp" --split test "$T/tei" "$T/tep" \
    --classes even,odd >/dev/null || { echo "FAIL could not make the MNIST slices"; exit 1; }
cd "$T" || exit 1


# ---- pretraining: a small version of the MNIST CNN on digits ----
SMALL=(model.channels=[4,8] model.hidden=[16] train.threads=1 data.batch_size=32)
"$TRAIN" "$ROOT/configs/mnist_cnn.yaml" "${SMALL[@]}" data.path=digits.h5 train.epochs=1 \
    train.out_dir=pre >"$T/pre.out" 2>&1 || { echo "FAIL pretraining ($(tail -c 400 "$T/pre.out"))"; exit 1; }
P=pre/mnist_cnn/best.h5

# ---- the recipe, as shipped, on the new task ----
RECIPE=("$ROOT/configs/finetune_fashion.yaml" "${SMALL[@]}" data.path=parity.h5 finetune.init_from=$P)
if "$TRAIN" "${RECIPE[@]}" train.out_dir=ft >"$T/ft.out" 2>&1; then pass "finetune_fashion.yaml runs on the new task"
else fail "finetune_fashion.yaml (exit $?: $(tail -c 400 "$T/ft.out"))"; fi
F=ft/finetune_fashion
grep -q "finetune: loaded 6 arrays from $P; re-initialised head" "$T/ft.out" &&
    pass "init_from loads conv1, conv2 and fc1; the head is new" || fail "loaded line ($(grep finetune: "$T/ft.out"))"
# conv 4*9+4 + 8*4*9+8 = 336 frozen; fc1 16*392+16 = 6288 and head 2*16+2 = 34 train
grep -q "parameters: 6658 (6322 trainable)" "$T/ft.out" &&
    pass "the convolutions are frozen by pattern (6322 of 6658 parameters train)" ||
    fail "trainable count ($(grep parameters: "$T/ft.out"))"
grep -Eq "^  head +linear +in=16, out=2, bias" "$T/ft.out" && pass "the new head has the new task's 2 classes" ||
    fail "head shape ($(grep head "$T/ft.out"))"
"$T/ckpt_cmp" $P $F/last.h5 conv1.weight conv1.bias conv2.weight conv2.bias fc1.weight head.weight >"$T/cmp"
[ "$(tr '\n' ' ' < "$T/cmp")" = "conv1.weight same conv1.bias same conv2.weight same conv2.bias same fc1.weight differs head.weight differs " ] &&
    pass "after training the frozen convolutions are bitwise the pretrained ones, fc1 moved" ||
    fail "frozen/trained parameters ($(tr '\n' ' ' < "$T/cmp"))"
acc=$(sed -n 's/^best test accuracy \([0-9.]*\)%.*/\1/p' "$T/ft.out")
"$EVAL" $F/best.h5 --json >"$T/ev.json" 2>"$T/ev.err" &&
    [ "$(sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p' "$T/ev.json" | awk '{ printf "%.2f", $1 * 100 }')" = "$acc" ] &&
    pass "eval of the fine-tuned best.h5 reproduces train's $acc%" ||
    fail "eval of the fine-tuned model (train said $acc%: $(head -c 300 "$T/ev.json") $(head -c 300 "$T/ev.err"))"
"$EVAL" $F/best.h5 >"$T/ev.out" 2>&1 && grep -q "odd" "$T/ev.out" && pass "eval names the new classes" ||
    fail "eval class names ($(head -c 300 "$T/ev.out"))"
"$TRAIN" "${RECIPE[@]}" train.out_dir=ft train.epochs=2 --resume $F >"$T/res.out" 2>&1 &&
    "$T/ckpt_cmp" $P $F/last.h5 conv1.weight conv2.weight >"$T/cmp" &&
    [ "$(tr '\n' ' ' < "$T/cmp")" = "conv1.weight same conv2.weight same " ] &&
    pass "a resumed fine-tuning run keeps the convolutions frozen" ||
    fail "resume of a fine-tuning run ($(tail -c 300 "$T/res.out") $(cat "$T/cmp"))"

# ---- loading mismatches: every name at once, nothing loaded ----
# one conv stage and two hidden layers: conv2 is unexpected, fc1 and head have other shapes,
# fc2 is missing
OTHER=("$ROOT/configs/mnist_cnn.yaml" model.channels=[4] model.hidden=[16,12] train.threads=1
       data.path=digits.h5 train.epochs=1 finetune.init_from=$P)
expect "strict init_from lists every unexpected, missing and mis-shaped name in one message" 2 \
    "finetune.init_from pre/mnist_cnn/best.h5 does not fit the model \(finetune.strict\): .*unexpected: conv2.weight .*unexpected: conv2.bias .*mismatch: fc1.weight is float32\[16,784\] in the model but float32\[16,392\] given.*mismatch: head.weight is float32\[10,12\] in the model but float32\[10,16\] given.*missing: fc2.weight.*missing: fc2.bias" \
    -- "$TRAIN" "${OTHER[@]}" train.out_dir=o1
[ ! -e o1 ] && pass "a refused load writes no run folder" || fail "a refused load left o1/"
"$TRAIN" "${OTHER[@]}" train.out_dir=o2 finetune.strict=false >"$T/ns.out" 2>&1 &&
    grep -q "finetune: not loaded (finetune.strict is false):" "$T/ns.out" &&
    grep -q "unexpected: conv2.weight" "$T/ns.out" && grep -q "missing: fc2.bias" "$T/ns.out" &&
    grep -q "mismatch: head.weight" "$T/ns.out" && grep -q "finetune: loaded 4 arrays" "$T/ns.out" &&
    pass "finetune.strict=false loads what fits (conv1, fc1.bias, head.bias) and reports the rest" ||
    fail "non-strict load ($(grep finetune "$T/ns.out" | head -c 500))"
expect "the head named as expected leaves only the real mismatches" 2 \
    "does not fit the model \(finetune.strict\): unexpected: conv2.weight .*mismatch: fc1.weight .*missing: fc2.bias" \
    -- "$TRAIN" "${OTHER[@]}" train.out_dir=o3 finetune.head.name=head
grep -q "head\." "$T/err" && fail "the expected head is still reported ($(cat "$T/err"))" ||
    pass "the expected head is not reported"
expect "init_from a missing file" 2 "finetune.init_from: .*nothing.h5" \
    -- "$TRAIN" "${RECIPE[@]}" train.out_dir=o4 finetune.init_from=nothing.h5
expect "init_from a dataset instead of a checkpoint" 2 "finetune.init_from: .*digits.h5" \
    -- "$TRAIN" "${RECIPE[@]}" train.out_dir=o5 finetune.init_from=digits.h5
expect "head.name matching nothing" 2 "finetune.head.name 'classifier' matches no parameter of the model" \
    -- "$TRAIN" "${RECIPE[@]}" train.out_dir=o6 finetune.head.name=classifier
expect "head.out that is not the data's class count" 2 "finetune.head.out is 10 but parity.h5 has 2 classes" \
    -- "$TRAIN" "${RECIPE[@]}" train.out_dir=o7 finetune.head.out=10
expect "freezing everything" 2 "every parameter is frozen; nothing to train" \
    -- "$TRAIN" "${RECIPE[@]}" train.out_dir=o8 'finetune.freeze=["*"]'

finish
