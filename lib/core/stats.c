/* Counters that let tests and benchmarks see what eval did (kernels, fusion, bytes, FLOPs). */
#include "internal.h"

static _Atomic uint64_t kernels, fused_ops, buffers, bytes_alloc, bytes_moved, flops, nodes;

void lz_stats_add(uint64_t k, uint64_t moved, uint64_t f) {
    atomic_fetch_add(&kernels, k);
    atomic_fetch_add(&bytes_moved, moved);
    atomic_fetch_add(&flops, f);
}
void lz_stats_add_fused(uint64_t ops) { atomic_fetch_add(&fused_ops, ops); }
void lz_stats_add_alloc(uint64_t bytes) {
    atomic_fetch_add(&buffers, 1);
    atomic_fetch_add(&bytes_alloc, bytes);
}
void lz_stats_add_nodes(uint64_t n) { atomic_fetch_add(&nodes, n); }

lz_stats_t lz_stats(void) {
    return (lz_stats_t){
        .kernels = kernels, .fused_ops = fused_ops, .buffers = buffers,
        .bytes_alloc = bytes_alloc, .bytes_moved = bytes_moved, .flops = flops,
        .nodes_evaluated = nodes,
    };
}

void lz_stats_reset(void) {
    kernels = fused_ops = buffers = bytes_alloc = bytes_moved = flops = nodes = 0;
}
