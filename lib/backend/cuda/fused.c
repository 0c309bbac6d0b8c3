/* Fused elementwise groups and reductions on the GPU: codegen.c writes each group's kernel
 * as CUDA C (its header says what the kernels do); here that source is compiled by NVRTC
 * for this device, cached by its text (in memory, and on disk so that a run's kernels
 * compile once per machine), and launched on the compute stream with its argument words. */
#include <errno.h>
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "codegen.h"
#include "cuda.h"

/* ---- kernels: the cache ---- */
typedef struct entry { char *src; uint64_t hash; cudaLibrary_t lib; cudaKernel_t k, comb; struct entry *next; } entry;
#define NSLOTS 1024
static entry *slots[NSLOTS];
static char arch[32];

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The disk cache: compiled kernels survive the process (a training run's groups compile
 * once per machine, not once per run). A file holds the source's length, the source (checked
 * on reading: a hash collision is a miss) and the cubin. $LZ_CUDA_CACHE names the folder
 * ("" turns it off); default ~/.cache/leibniz/cuda. Writes go to a temporary name and are
 * renamed, so concurrent processes never read half a file. */
static char cache_dir[1024];

static void cache_path(char *buf, size_t n, uint64_t h) {
    snprintf(buf, n, "%s/%016llx.bin", cache_dir, (unsigned long long)h);
}

static char *cache_read(const char *src, uint64_t h, size_t *size) {
    if (!cache_dir[0]) return NULL;
    char path[1100];
    cache_path(path, sizeof path, h);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *bin = NULL;
    uint64_t len = 0, sl = strlen(src);
    if (fread(&len, 8, 1, f) == 1 && len == sl) {
        char *s = malloc(sl + 1);
        if (s && fread(s, 1, sl, f) == sl && !memcmp(s, src, sl)) {
            long at = ftell(f);
            fseek(f, 0, SEEK_END);
            long end = ftell(f);
            if (at > 0 && end > at && end - at < (1L << 28)) {
                fseek(f, at, SEEK_SET);
                bin = malloc((size_t)(end - at));
                if (bin && fread(bin, 1, (size_t)(end - at), f) == (size_t)(end - at)) *size = (size_t)(end - at);
                else { free(bin); bin = NULL; }
            }
        }
        free(s);
    }
    fclose(f);
    return bin;
}

static void cache_write(const char *src, uint64_t h, const char *bin, size_t size) {
    if (!cache_dir[0]) return;
    char path[1100], tmp[1200];
    cache_path(path, sizeof path, h);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint64_t len = strlen(src);
    bool ok = fwrite(&len, 8, 1, f) == 1 && fwrite(src, 1, len, f) == len &&
              fwrite(bin, 1, size, f) == size;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path)) remove(tmp);
}

static char *nvrtc_build(const char *src, size_t *size) {
    nvrtcProgram prog;
    if (nvrtcCreateProgram(&prog, src, "lz_fused.cu", 0, NULL, NULL) != NVRTC_SUCCESS)
        return lz_fail("fused kernel: NVRTC could not start");
    const char *opts[] = {arch, "--fmad=false", "--std=c++17", "-default-device"};
    nvrtcResult r = nvrtcCompileProgram(prog, 4, opts);
    if (r != NVRTC_SUCCESS) {
        size_t n = 0;
        nvrtcGetProgramLogSize(prog, &n);
        char *log = malloc(n + 1);
        if (log) { nvrtcGetProgramLog(prog, log); log[n] = 0; }
        lz_fail("fused kernel: NVRTC failed (%s): %.300s", nvrtcGetErrorString(r), log ? log : "");
        free(log);
        nvrtcDestroyProgram(&prog);
        return NULL;
    }
    size_t n = 0;
    nvrtcGetCUBINSize(prog, &n);
    char *cubin = malloc(n ? n : 1);
    if (!cubin || nvrtcGetCUBIN(prog, cubin) != NVRTC_SUCCESS) {
        free(cubin);
        nvrtcDestroyProgram(&prog);
        return lz_fail("fused kernel: out of memory");
    }
    nvrtcDestroyProgram(&prog);
    *size = n;
    return cubin;
}

static entry *compile(const char *src, bool has_comb) {
    uint64_t h = fnv(src);
    for (entry *e = slots[h % NSLOTS]; e; e = e->next)
        if (e->hash == h && !strcmp(e->src, src)) return e;
    size_t n = 0;
    char *cubin = cache_read(src, h, &n);
    if (!cubin) {
        if (!(cubin = nvrtc_build(src, &n))) return NULL;
        cache_write(src, h, cubin, n);
        lz_stats_add_compile();
    }
    entry *e = calloc(1, sizeof *e);
    char *copy = strdup(src);
    if (!e || !copy) {
        free(cubin); free(e); free(copy);
        return lz_fail("fused kernel: out of memory");
    }
    cudaError_t ce = cudaLibraryLoadData(&e->lib, cubin, NULL, NULL, 0, NULL, NULL, 0);
    free(cubin);
    if (ce == cudaSuccess) ce = cudaLibraryGetKernel(&e->k, e->lib, "k");
    if (ce == cudaSuccess && has_comb) ce = cudaLibraryGetKernel(&e->comb, e->lib, "comb");
    if (ce != cudaSuccess) {
        free(e); free(copy);
        cu_fail("fused kernel: loading", NULL, ce);
        return NULL;
    }
    e->src = copy;
    e->hash = h;
    e->next = slots[h % NSLOTS];
    slots[h % NSLOTS] = e;
    return e;
}

int cu_fused_init(void) {
    snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d%d", cu_props.major, cu_props.minor);
    const char *d = getenv("LZ_CUDA_CACHE"), *home = getenv("HOME");
    if (d) snprintf(cache_dir, sizeof cache_dir, "%s", d);
    else if (home && *home) snprintf(cache_dir, sizeof cache_dir, "%s/.cache/leibniz/cuda", home);
    if (cache_dir[0]) {   /* mkdir -p; a folder that cannot be made turns the cache off */
        char p[sizeof cache_dir];
        snprintf(p, sizeof p, "%s", cache_dir);
        for (char *q = p + 1; *q; q++)
            if (*q == '/') { *q = 0; mkdir(p, 0755); *q = '/'; }
        if (mkdir(p, 0755) && errno != EEXIST) cache_dir[0] = 0;
    }
    return 0;
}

static int launch(cudaKernel_t k, cg_dim grid, int threads, int64_t *w) {
    void *args[] = {w};
    cudaError_t e = cudaLaunchKernel((const void *)k, (dim3){grid.x, grid.y, 1},
                                     (dim3){(unsigned)threads, 1, 1}, args, 0, cu_stream);
    return e == cudaSuccess ? 0 : cu_fail("fused kernel", NULL, e);
}

int cu_run_fused(const lz_fused *g) {
    cg_plan pl;
    if (cg_plan_group(g, cu_props.multiProcessorCount, &pl)) return -1;
    if (getenv("LZ_CUDA_DUMP")) fputs(pl.src, stderr);
    entry *e = compile(pl.src, pl.comb);
    cg_plan_free(&pl);
    if (!e) return -1;
    lz_buffer *part = NULL;
    int rc = 0;
    if (!pl.empty) {
        if (pl.part_bytes && !(part = cu_scratch(pl.part_bytes))) return -1;
        if (part) pl.w[pl.wpart] = (int64_t)(intptr_t)part->dev;
        rc = launch(e->k, pl.grid, pl.threads, pl.w);
        if (!rc && pl.comb) rc = launch(e->comb, pl.comb_grid, pl.threads, pl.w);
        lz_buffer_release(part);   /* the stream orders its reuse after these kernels */
    }
    if (rc) return -1;
    lz_stats_add_fused((uint64_t)g->ninstr);
    return cu_done(g->reduce ? lz_prims[g->reduce->prim].name : "fused elementwise",
                   g->reduce ? g->reduce : g->out, 1, pl.moved, 0);
}
