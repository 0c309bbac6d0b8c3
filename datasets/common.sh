# Sourced by the fetch scripts: where things go, and getting a file whose sha256 we know.
#
# Environment:
#   LZ_DATA_MIRROR   a folder laid out like the project's data mirror (mnist/*.gz,
#                    tinyshakespeare.txt, ...), tried before any network source
#   LZ_DATA_CACHE    where verified downloads are kept (default: data/downloads)
#   LZ_DATA_OFFLINE  1: use the mirror and the cache only, never the network
#   LZ_DATA_TOOL     the converter (default: bin/lz-data)
#
# A file is used only after its checksum matches: a download goes to NAME.part, is checked,
# and only then renamed; a cached or mirrored file that does not match (a truncated copy,
# say) is reported, deleted from the cache, and fetched again from the next source.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOL=${LZ_DATA_TOOL:-$ROOT/bin/lz-data}
CACHE=${LZ_DATA_CACHE:-$ROOT/data/downloads}
MIRROR=${LZ_DATA_MIRROR:-}
OFFLINE=${LZ_DATA_OFFLINE:-0}

say() { echo "$PROG: $*" >&2; }
die() { say "$*"; exit 1; }

need_tool() {
    [ -x "$TOOL" ] || die "the converter $TOOL is missing: build it with 'make bin/lz-data'"
}

sha_of() { sha256sum < "$1" | cut -c1-64; }

# verify FILE SHA256: true when the file exists and matches.
verify() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }

# download URL DEST SHA256 [gunzip]: to DEST via DEST.part, two tries; with "gunzip" the
# download is a .gz whose decompressed content must match. True on success.
download() {
    local url=$1 dest=$2 sha=$3 gz=${4:-} try
    [ "$OFFLINE" = 1 ] && return 1
    for try in 1 2; do
        rm -f "$dest.part" "$dest.part.gz"
        if command -v curl >/dev/null; then
            curl -fsSL --connect-timeout 20 --max-time 600 -o "$dest.part${gz:+.gz}" "$url" || continue
        elif command -v wget >/dev/null; then
            wget -q -T 20 -O "$dest.part${gz:+.gz}" "$url" || continue
        else
            say "neither curl nor wget is installed"; return 1
        fi
        if [ -n "$gz" ]; then
            gzip -dc "$dest.part.gz" > "$dest.part" 2>/dev/null || { say "$url: damaged or truncated gzip, retrying"; continue; }
            rm -f "$dest.part.gz"
        fi
        if verify "$dest.part" "$sha"; then mv "$dest.part" "$dest"; return 0; fi
        say "$url: checksum mismatch (truncated or changed download), retrying"
    done
    rm -f "$dest.part" "$dest.part.gz"
    return 1
}

# from_mirror REL DEST SHA256 [GZ_SHA256|gunzip]: copy $LZ_DATA_MIRROR/REL into DEST, or
# decompress it when a third argument is given, if the result verifies. A .gz whose own
# sha256 differs from the known one is still accepted when its content verifies (the same
# data compressed again), since the content is what the dataset is made of.
from_mirror() {
    local rel=$1 dest=$2 sha=$3 gz=${4:-}
    [ -n "$MIRROR" ] && [ -f "$MIRROR/$rel" ] || return 1
    rm -f "$dest.part"
    if [ -n "$gz" ] && [ "$gz" != gunzip ] && ! verify "$MIRROR/$rel" "$gz"; then
        say "$MIRROR/$rel: not the known .gz file (checksum differs); checking its content"
    fi
    if [ -n "$gz" ]; then
        gzip -dc "$MIRROR/$rel" > "$dest.part" 2>/dev/null || { say "$MIRROR/$rel: damaged or truncated gzip, not used"; rm -f "$dest.part"; return 1; }
    else
        cp "$MIRROR/$rel" "$dest.part"
    fi
    if verify "$dest.part" "$sha"; then mv "$dest.part" "$dest"; return 0; fi
    say "$MIRROR/$rel: checksum mismatch (truncated or damaged copy), not used"
    rm -f "$dest.part"
    return 1
}

# cached DEST SHA256: true when a verified copy is already there; a damaged one is removed.
cached() {
    [ -f "$1" ] || return 1
    verify "$1" "$2" && return 0
    say "$1: checksum mismatch (an interrupted earlier download?), fetching it again"
    rm -f "$1"
    return 1
}
