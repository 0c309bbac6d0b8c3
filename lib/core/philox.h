/* Philox4x32 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11): a keyed bijection of 128-bit counters, so any element of a random stream can be
 * computed from (key, index) alone. Shared by the random constructors (key derivation) and
 * the RANDOM_BITS kernels; the layout of a node's parameters is documented in
 * lib/ops/random.c.
 *
 * One round maps counter (c0, c1, c2, c3) and round key (k0, k1) to
 *   (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
 * and the round key grows by the Weyl constants (W0, W1) between rounds. Philox4x32-10 is
 * ten rounds: the variant Random123 recommends and the one our streams use. */
#ifndef LZ_PHILOX_H
#define LZ_PHILOX_H

#include <stdint.h>

#define LZ_PHILOX_M0 0xD2511F53u
#define LZ_PHILOX_M1 0xCD9E8D57u
#define LZ_PHILOX_W0 0x9E3779B9u   /* golden ratio */
#define LZ_PHILOX_W1 0xBB67AE85u   /* sqrt(3) - 1 */
#define LZ_PHILOX_ROUNDS 10

/* c: counter in, output out. rounds > 0 (tests use 7 for the published 7-round vectors). */
static inline void lz_philox4x32(uint32_t c[4], uint32_t k0, uint32_t k1, int rounds) {
    for (int r = 0; r < rounds; r++) {
        if (r) { k0 += LZ_PHILOX_W0; k1 += LZ_PHILOX_W1; }
        uint64_t p0 = (uint64_t)LZ_PHILOX_M0 * c[0], p1 = (uint64_t)LZ_PHILOX_M1 * c[2];
        uint32_t x0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t x2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = x0;
        c[1] = (uint32_t)p1;
        c[2] = x2;
        c[3] = (uint32_t)p0;
    }
}

/* How a 128-bit lz_key {hi, lo} drives Philox (the 192 input bits are all used):
 *   Philox key    = (lo & 0xffffffff, lo >> 32)
 *   counter c2,c3 = (hi & 0xffffffff, hi >> 32)
 *   counter c0,c1 = a 64-bit block number b. Data streams use b < 2^62 (block b holds words
 *                   4b..4b+3 of the key's word stream); key derivation sets the top bits of
 *                   c1 (LZ_RNG_TAG_*), so derived keys never coincide with data words. */
enum {
    LZ_RNG_TAG_SPLIT = 0x40000001,
    LZ_RNG_TAG_FOLD_LO = 0x40000002,
    LZ_RNG_TAG_FOLD_HI = 0x40000003,
};
#define LZ_RNG_MAX_BLOCKS ((int64_t)1 << 62)

static inline void lz_rng_block(uint64_t hi, uint64_t lo, uint64_t block, uint32_t out[4]) {
    out[0] = (uint32_t)block;
    out[1] = (uint32_t)(block >> 32);
    out[2] = (uint32_t)hi;
    out[3] = (uint32_t)(hi >> 32);
    lz_philox4x32(out, (uint32_t)lo, (uint32_t)(lo >> 32), LZ_PHILOX_ROUNDS);
}

/* Distributions a RANDOM_BITS node computes (params.i[0]); see lib/ops/random.c. */
enum {
    LZ_RNG_BITS, LZ_RNG_UNIFORM, LZ_RNG_NORMAL, LZ_RNG_TRUNC_NORMAL, LZ_RNG_BERNOULLI,
    LZ_RNG_RANDINT, LZ_RNG_PERMUTATION
};

#endif
