/* A stand-in GPU backend for tests on machines without a GPU: device memory is host memory,
 * and each fused group runs the source lib/backend/cuda/codegen.c writes for the GPU,
 * compiled with g++ against tests/cuda_emu.h (an emulation of threads, blocks,
 * __syncthreads and warp shuffles) and cached by its text in a temporary folder. Kernel
 * nodes have no GPU kernels here and run on the CPU (eval counts them as fallbacks).
 *
 * tests/test_codegen.c installs it; any test that includes testutil.h runs with it as its
 * default device when LZ_TEST_EMULATED_GPU=1 (a slow, thorough check of eval's GPU path
 * and of the generated code over the whole suite: make test-emulated). */
#ifndef LZ_EMU_GPU_H
#define LZ_EMU_GPU_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/internal.h"
#include "backend/cuda/codegen.h"

#define EMU_SMS 2   /* a small device: the reduction modes switch at small sizes */

static char emu_dir[256];
static int emu_compiled;

typedef void (*emu_fn)(const int64_t *w, unsigned gx, unsigned gy, unsigned bx, int fibers);

static uint64_t emu_fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The kernel's shared object (compiled once per source), its entry points in *k, *comb. */
static int emu_load(const char *src, bool has_comb, emu_fn *k, emu_fn *comb) {
    char path[512], so[512], cmd[4200], cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    uint64_t h = emu_fnv(src);
    snprintf(path, sizeof path, "%s/%016llx.cu", emu_dir, (unsigned long long)h);
    snprintf(so, sizeof so, "%s/%016llx.so", emu_dir, (unsigned long long)h);
    if (access(so, F_OK)) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
        FILE *f = fopen(tmp, "w");
        if (!f) return -1;
        fputs(src, f);
        fprintf(f, "extern \"C\" void emu_k(const long long *w, unsigned gx, unsigned gy, unsigned bx, int fib)"
                   " { emu::launch([&] { k(*(const P *)w); }, gx, gy, bx, fib); }\n");
        if (strstr(src, "void comb("))   /* the source is the same whether or not P > 1 */
            fprintf(f, "extern \"C\" void emu_comb(const long long *w, unsigned gx, unsigned gy, unsigned bx, int fib)"
                       " { emu::launch([&] { comb(*(const P *)w); }, gx, gy, bx, fib); }\n");
        fclose(f);
        /* compiled to a private name, then renamed: tests sharing the folder never load half
         * a library */
        snprintf(cmd, sizeof cmd, "g++ -std=c++17 -O1 -w -fPIC -shared -DLZ_EMU -include %s/tests/cuda_emu.h "
                 "-x c++ %s -o %s.so 2> %s.log && mv -f %s.so %s", cwd, tmp, tmp, path, tmp, so);
        if (system(cmd)) {
            lz_fail("g++ failed on the generated kernel %s (see %s.log)", path, path);
            return -1;
        }
        emu_compiled++;
    }
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { lz_fail("dlopen %s: %s", so, dlerror()); return -1; }
    *k = (emu_fn)dlsym(lib, "emu_k");
    *comb = has_comb ? (emu_fn)dlsym(lib, "emu_comb") : NULL;
    return *k && (!has_comb || *comb) ? 0 : -1;
}

static int emu_run_fused(const lz_fused *g) {
    cg_plan pl;
    if (cg_plan_group(g, EMU_SMS, &pl)) return -1;
    emu_fn k, comb;
    /* kernels with shuffles or barriers need their threads as coroutines */
    bool fibers = strstr(pl.src, "wsum(acc)") != NULL;
    int rc = emu_load(pl.src, pl.comb, &k, &comb);
    cg_plan_free(&pl);
    if (rc) return -1;
    if (pl.empty) return 0;
    void *part = pl.part_bytes ? malloc(pl.part_bytes) : NULL;
    if (part) pl.w[pl.wpart] = (int64_t)(intptr_t)part;
    /* grid-stride loops make any x extent correct: two blocks keep the emulation quick,
     * while y (the chunks of a split reduction) is kept whole */
    unsigned gx = pl.grid.x < 2 ? pl.grid.x : 2;
    k(pl.w, gx, pl.grid.y, (unsigned)pl.threads, fibers);
    if (pl.comb) comb(pl.w, pl.comb_grid.x < 2 ? pl.comb_grid.x : 2, 1, (unsigned)pl.threads, 0);
    free(part);
    lz_stats_add(1, pl.moved, 0);   /* as fused.c counts */
    lz_stats_add_gpu(1);
    lz_stats_add_fused((uint64_t)g->ninstr);
    return 0;
}

static int emu_to_device(lz_buffer *b) { memcpy(b->dev, b->data, b->nbytes); return 0; }
static int emu_to_host(lz_buffer *b) { memcpy(b->data, b->dev, b->nbytes); return 0; }
static void emu_sync(void) {}
static void *emu_dev_alloc(size_t n) { return aligned_alloc(64, n); }

static const lz_gpu_backend emu_backend = {
    .name = "emulated GPU (tests/cuda_emu.h)", .run_fused = emu_run_fused,
    .to_device = emu_to_device, .to_host = emu_to_host, .synchronize = emu_sync,
};

/* Installs the emulated GPU (once; a GPU already present wins). 0, or -1 when there is
 * no g++ or no folder for the kernels. */
static inline int emu_gpu_install(void) {
    if (emu_dir[0]) return 0;
    if (system("g++ --version > /dev/null 2>&1")) return -1;
    if (lz_gpu_available()) return -1;
    const char *keep = getenv("LZ_EMU_KERNELS");   /* a folder shared by several tests, kept */
    if (keep && *keep) {
        snprintf(emu_dir, sizeof emu_dir, "%s", keep);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", emu_dir);
        if (system(cmd)) { emu_dir[0] = 0; return -1; }
    } else {
        snprintf(emu_dir, sizeof emu_dir, "%s/lz_codegen_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(emu_dir)) { emu_dir[0] = 0; return -1; }
    }
    lz_memory_install_device(emu_dev_alloc, free, (size_t)4 << 30);
    lz_gpu_install(&emu_backend);
    return 0;
}

static inline void emu_gpu_cleanup(void) {
    char cmd[300];
    const char *keep = getenv("LZ_EMU_KERNELS");
    if (!emu_dir[0] || (keep && *keep)) return;
    snprintf(cmd, sizeof cmd, "rm -rf %s", emu_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", emu_dir);
}

#endif
