#!/usr/bin/env bash
# Fashion-MNIST (60,000 + 10,000 clothing images, 28x28 gray, 10 classes) to OUT
# (default data/fashion-mnist.h5). Sources, in order: the cache,
# $LZ_DATA_MIRROR/fashion-mnist/*.gz, Debian's package dataset-fashion-mnist (apt-get
# download + dpkg -x: nothing is installed, no root needed), the upstream web mirror.
PROG=fashion-mnist
source "$(dirname "$0")/common.sh"
OUT=${1:-$ROOT/data/fashion-mnist.h5}
need_tool

FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SHA=(   # the uncompressed IDX files (Debian recompresses them, so not the .gz)
    [train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
    [train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
    [t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
    [t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
WEB=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com
CLASSES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"

D=$CACHE/fashion-mnist
mkdir -p "$D"

# apt verifies the package against the signed archive index; we verify the files in it.
from_debian() {
    [ "$OFFLINE" = 1 ] && return 1
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || { say "apt-get/dpkg not found: skipping the Debian package"; return 1; }
    local tmp
    tmp=$(mktemp -d)
    say "fetching the Debian package dataset-fashion-mnist"
    if (cd "$tmp" && apt-get download -q dataset-fashion-mnist >/dev/null 2>&1) &&
       dpkg -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x" 2>/dev/null; then
        for f in "${FILES[@]}"; do
            local gz=$tmp/x/usr/share/datasets/fashion-mnist/$f.gz
            [ -f "$gz" ] && gzip -dc "$gz" > "$D/$f.part" 2>/dev/null && verify "$D/$f.part" "${SHA[$f]}" &&
                mv "$D/$f.part" "$D/$f"
            rm -f "$D/$f.part"
        done
    else
        say "the Debian package could not be fetched (apt-get update may be needed)"
    fi
    rm -rf "$tmp"
}

deb_tried=0
for f in "${FILES[@]}"; do
    cached "$D/$f" "${SHA[$f]}" && continue
    from_mirror "fashion-mnist/$f.gz" "$D/$f" "${SHA[$f]}" gunzip && continue
    if [ $deb_tried = 0 ]; then deb_tried=1; from_debian; fi
    cached "$D/$f" "${SHA[$f]}" && continue
    say "fetching $WEB/$f.gz"
    download "$WEB/$f.gz" "$D/$f" "${SHA[$f]}" gunzip && continue
    die "could not get $f with the right checksum (tried: the cache $D, the mirror ${MIRROR:-(LZ_DATA_MIRROR unset)}, Debian's dataset-fashion-mnist, $WEB)"
done

mkdir -p "$(dirname "$OUT")"
"$TOOL" idx "$OUT" \
    --split train "$D/train-images-idx3-ubyte" "$D/train-labels-idx1-ubyte" \
    --split test "$D/t10k-images-idx3-ubyte" "$D/t10k-labels-idx1-ubyte" \
    --classes "$CLASSES" --name fashion-mnist \
    --source "Fashion-MNIST (Xiao, Rasul, Vollgraf, Zalando Research), IDX files"
"$TOOL" info "$OUT"
