/* The generator of fused kernels (codegen.c): CUDA C source for one lz_fused group, the
 * argument words it reads, and how to launch it. Pure C with no CUDA header, so it is built
 * in every configuration: fused.c compiles and launches its plans with NVRTC on a GPU, and
 * tests/test_codegen.c runs the same source on the CPU through a small emulation of the
 * CUDA execution model, checking the generated code against the CPU engine where no GPU is. */
#ifndef LZ_CUDA_CODEGEN_H
#define LZ_CUDA_CODEGEN_H

#include "../../core/internal.h"

#define CG_MAXW 1024

typedef struct { unsigned x, y; } cg_dim;

typedef struct {
    char *src;             /* malloc'd: one kernel "k", and "comb" when `comb` */
    int64_t w[CG_MAXW];    /* the kernel's only argument: struct P { long long w[nw]; } */
    int nw;
    int wpart;             /* word to receive the partials' device address, -1 if none */
    size_t part_bytes;     /* scratch the partials need (0: none) */
    cg_dim grid, comb_grid;
    int threads;           /* per block (both kernels) */
    bool comb;             /* a second kernel combines the partials */
    bool empty;            /* nothing to launch */
    uint64_t moved;        /* bytes read and written, for lz_stats */
} cg_plan;

/* Plans g for a device of `sms` multiprocessors. Pointers come from the buffers' dev
 * addresses (leaves, outputs). 0, or -1 with the error set (an op without GPU code, a group
 * too large). */
int  cg_plan_group(const lz_fused *g, int sms, cg_plan *p);
void cg_plan_free(cg_plan *p);

#endif
