/* Counters that let tests and benchmarks see what eval did (kernels, fusion, bytes, FLOPs). */
#include "internal.h"

static _Atomic uint64_t kernels, fused_ops, buffers, bytes_alloc, bytes_moved, flops, nodes;
static _Atomic uint64_t gpu_kernels, to_device, to_host, fallbacks, compiles;

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
void lz_stats_add_gpu(uint64_t k) { atomic_fetch_add(&gpu_kernels, k); }
void lz_stats_add_copy(lz_device to, uint64_t bytes) {
    atomic_fetch_add(to == LZ_GPU ? &to_device : &to_host, bytes);
}
void lz_stats_add_fallback(void) { atomic_fetch_add(&fallbacks, 1); }
void lz_stats_add_compile(void) { atomic_fetch_add(&compiles, 1); }

lz_stats_t lz_stats(void) {
    return (lz_stats_t){
        .kernels = kernels, .fused_ops = fused_ops, .buffers = buffers,
        .bytes_alloc = bytes_alloc, .bytes_moved = bytes_moved, .flops = flops,
        .nodes_evaluated = nodes, .gpu_kernels = gpu_kernels, .to_device = to_device,
        .to_host = to_host, .cpu_fallbacks = fallbacks, .compiles = compiles,
    };
}

void lz_stats_reset(void) {
    kernels = fused_ops = buffers = bytes_alloc = bytes_moved = flops = nodes = 0;
    gpu_kernels = to_device = to_host = fallbacks = compiles = 0;
}
