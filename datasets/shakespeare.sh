#!/usr/bin/env bash
# Tiny Shakespeare (1,115,394 characters) to a character-level dataset OUT (default
# data/shakespeare.h5): /train the first 90% of the text, /val the last 10%.
# Sources, in order: the cache, $LZ_DATA_MIRROR/tinyshakespeare.txt, the char-rnn repository.
PROG=shakespeare
source "$(dirname "$0")/common.sh"
OUT=${1:-$ROOT/data/shakespeare.h5}
need_tool

SHA=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
D=$CACHE
F=$D/tinyshakespeare.txt
mkdir -p "$D"

if ! cached "$F" "$SHA" && ! from_mirror tinyshakespeare.txt "$F" "$SHA"; then
    say "fetching $URL"
    download "$URL" "$F" "$SHA" ||
        die "could not get tinyshakespeare.txt with the right checksum (tried: the cache $D, the mirror ${MIRROR:-(LZ_DATA_MIRROR unset)}, $URL)"
fi

mkdir -p "$(dirname "$OUT")"
"$TOOL" text "$OUT" "$F" --val-fraction 0.1 --name shakespeare \
    --source "Tiny Shakespeare (char-rnn, Karpathy), public domain"
"$TOOL" info "$OUT"
