/* For the shell tests: ckpt_cmp A.h5 B.h5 NAME... prints "NAME same" or "NAME differs" for
 * each parameter NAME of the two checkpoints (bitwise comparison of the float32 values), or
 * "NAME absent" when either lacks it. Exit 0, or 1 when a file cannot be read. */
#include <stdio.h>
#include <string.h>
#include "core/core.h"
#include "io/checkpoint.h"

int main(int argc, char **argv) {
    if (argc < 3) { fputs("usage: ckpt_cmp A.h5 B.h5 NAME...\n", stderr); return 2; }
    lz_ckpt *a = lz_ckpt_open(argv[1]), *b = lz_ckpt_open(argv[2]);
    if (!a || !b) { fprintf(stderr, "ckpt_cmp: %s\n", lz_error()); return 1; }
    for (int i = 3; i < argc; i++) {
        lz_pool_push();
        lz_array *x = lz_ckpt_get(a, "params", argv[i]), *y = x ? lz_ckpt_get(b, "params", argv[i]) : NULL;
        const char *verdict = "absent";
        if (x && y) {
            LZ_EVAL(x, y);
            size_t nx = (size_t)lz_size(x) * sizeof(float), ny = (size_t)lz_size(y) * sizeof(float);
            verdict = nx == ny && !memcmp(lz_data(x), lz_data(y), nx) ? "same" : "differs";
        }
        lz_error_clear();
        printf("%s %s\n", argv[i], verdict);
        lz_pool_pop();
    }
    lz_ckpt_close(a);
    lz_ckpt_close(b);
    return 0;
}
