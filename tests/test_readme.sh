#!/usr/bin/env bash
# The C examples in README.md compile (-Wall -Wextra -Werror) against the library and run.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIB=${LZ_LIB:-$ROOT/build/release/libleibniz.a}
[ -f "$LIB" ] || { echo "FAIL $LIB is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '/^```c$/ {n++; f = dir "/ex" n ".c"; inblock = 1; next}
                   /^```$/ {inblock = 0; next}
                   inblock {print > f}' "$ROOT/README.md"
libs=${LZ_LDLIBS:-$(make -s --no-print-directory -C "$ROOT" print-libs)}
fail=0
count=0
for src in "$tmp"/ex*.c; do
    [ -f "$src" ] || continue
    count=$((count + 1))
    if ! cc -std=c11 -Wall -Wextra -Werror -I"$ROOT/lib" "$src" "$LIB" $libs -lm -o "${src%.c}" 2> "$tmp/err"; then
        echo "FAIL README example $count does not compile:"; cat "$tmp/err"; fail=1; continue
    fi
    if ! "${src%.c}" > "$tmp/out" 2>&1; then
        echo "FAIL README example $count exits with an error:"; cat "$tmp/out"; fail=1; continue
    fi
    if grep -q "error:" "$tmp/out"; then echo "FAIL README example $count reports:"; cat "$tmp/out"; fail=1; fi
done
[ "$count" -ge 2 ] || { echo "FAIL expected at least 2 C examples in README.md, found $count"; fail=1; }
[ $fail = 0 ] && echo "PASS $count README examples compile and run"
exit $fail
