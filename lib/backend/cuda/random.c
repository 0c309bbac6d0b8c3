/* RANDOM_BITS on the GPU (params and stream layout in lib/ops/random.c): the same Philox
 * bits as the CPU kernel (lib/backend/cpu/random.c), every distribution. The job is
 * prepared here as the CPU prepares it (the truncated normal's CDF values with the host's
 * erfc); random.cu says which results are bit-identical. */
#include <math.h>
#include <string.h>
#include "cuda.h"
#include "random.h"
#include "sort.h"
#include "../../core/philox.h"

_Static_assert(LZ_BOOL == 0 && LZ_U8 == 1 && LZ_I32 == 2 && LZ_I64 == 3 && LZ_F16 == 4 &&
               LZ_BF16 == 5 && LZ_F32 == 6, "dtype codes as random.cu numbers them");

static double normal_cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }

static int permutation(lz_array *out, int64_t n, uint64_t hi, uint64_t lo, uint64_t bytes) {
    if (n == 0) return cu_done("random_permutation", out, 1, bytes, 0);
    if (n > 0xffffffffll) {
        lz_fail("random_permutation: %lld elements are too many for the GPU yet", (long long)n);
        return -1;
    }
    int64_t P = 1;
    while (P < n) P <<= 1;
    size_t kbytes = (size_t)P * 8;
    lz_buffer *scratch = cu_scratch(kbytes + (size_t)n * 4);
    if (!scratch) return -1;
    uint64_t *keys = scratch->dev;
    uint32_t *draws = (uint32_t *)((char *)scratch->dev + kbytes);
    cuk_perm_draws(draws, keys, hi, lo, n, P, cu_stream);
    cuk_sort_u64_rows(keys, 1, P, cu_stream);
    cuk_perm_chain(cu_ptr(out), draws, keys, n, cu_stream);
    int rc = cu_done("random_permutation", out, 1, bytes, 0);
    lz_buffer_release(scratch);
    return rc;
}

static int random_bits_gpu(lz_array *out, lz_array *const *in, const lz_params *p) {
    (void)in;
    cuk_rng_desc d;
    memset(&d, 0, sizeof d);
    d.dist = (int)p->i[0];
    d.wpe = (int)p->i[3];
    d.dtype = (int)out->dtype;
    memcpy(&d.hi, &p->i[1], 8);
    memcpy(&d.lo, &p->i[2], 8);
    int64_t n = lz_size(out);
    uint64_t bytes = (uint64_t)n * lz_dtype_size(out->dtype);
    switch (d.dist) {
    case LZ_RNG_UNIFORM:
        d.lo_v = p->f[0];
        d.width = p->f[1] - p->f[0];
        d.lo_d = (float)p->f[2];
        d.hi_d = (float)p->f[3];
        break;
    case LZ_RNG_NORMAL:
        d.mean = p->f[0];
        d.std = p->f[1];
        break;
    case LZ_RNG_TRUNC_NORMAL:
        /* work on the side of the lower tail: mirror [lo, hi] when it lies above 0 */
        d.flip = p->f[0] > 0;
        d.a = d.flip ? -p->f[1] : p->f[0];
        d.b = d.flip ? -p->f[0] : p->f[1];
        d.pa = normal_cdf(d.a);
        d.pw = normal_cdf(d.b) - d.pa;
        d.lo_d = (float)p->f[2];
        d.hi_d = (float)p->f[3];
        break;
    case LZ_RNG_BERNOULLI:
        d.thresh = (uint64_t)p->i[6];
        break;
    case LZ_RNG_RANDINT:
        d.ilo = (uint64_t)p->i[4];
        memcpy(&d.span, &p->i[5], 8);
        break;
    case LZ_RNG_PERMUTATION:
        return permutation(out, n, d.hi, d.lo, bytes);
    default:
        break;
    }
    if (d.wpe != 1 && d.wpe != 2 && d.wpe != 4) {
        lz_fail("random_bits: %d words per element", d.wpe);
        return -1;
    }
    cuk_random(cu_ptr(out), &d, n, cu_stream);
    return cu_done("random_bits", out, 1, bytes, 0);
}

void cuda_register_random(void) { lz_prims[LZ_P_RANDOM_BITS].gpu = random_bits_gpu; }
