# Sourced by the shell tests that train on MNIST: cuts slices of the IDX files of
# $LZ_DATA_MIRROR/mnist (each with its own header) for lz-data to convert.
#   images GZ N SIDE OUT   the first N images, stored as SIDE x SIDE (the bytes are not re-cut)
#   labels GZ N OUT        the first N labels
#   have_mnist             true when the mirror has the MNIST files
MNIST=${LZ_DATA_MIRROR:-}/mnist
have_mnist() { [ -n "${LZ_DATA_MIRROR:-}" ] && [ -f "$MNIST/train-images-idx3-ubyte.gz" ]; }
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
images() {
    { printf '\x00\x00\x08\x03'; be32 "$2"; be32 "$3"; be32 "$3"; zcat "$1" | tail -c +17 | head -c $(($2 * $3 * $3)); } > "$4"
}
labels() { { printf '\x00\x00\x08\x01'; be32 "$2"; zcat "$1" | tail -c +9 | head -c "$2"; } > "$3"; }
