/* The one allocator ("unified memory"). On the CPU: 64-byte aligned host memory, with a
 * cache of freed blocks by size bucket so a training loop stops calling malloc after its
 * first step. The cache is bounded (beyond cache_limit blocks go back to the system) and a
 * limit turns an allocation past it into an error instead of a crash.
 *
 * Buckets: sizes are rounded up to 4 steps per power of two (at most 25% waste), which keeps
 * a small number of distinct sizes for the cache to match. A CUDA backend replaces
 * sys_alloc/sys_free with managed memory (lz_memory_set_system_allocator); nothing above
 * this file changes. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define ALIGN 64
#define NBUCKETS 256

typedef struct block { struct block *next; void *data; } block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *free_lists[NBUCKETS];
static size_t active, peak, cached, limit, cache_limit = (size_t)-1;
static int cache_limit_set;

static size_t bucket_size(size_t n, int *index) {
    if (n < 256) n = 256;
    int lg = 63 - __builtin_clzll((unsigned long long)n);   /* 2^lg <= n */
    size_t base = (size_t)1 << lg, step = base / 4;
    size_t k = (n - base + step - 1) / step;                 /* 0..4 */
    if (k == 4) { lg++; base <<= 1; step <<= 1; k = 0; }
    *index = (lg - 8) * 4 + (int)k;
    return base + k * step;
}

static void set_default_cache_limit(void) {
    if (cache_limit_set) return;
#ifdef __SANITIZE_ADDRESS__
    /* under AddressSanitizer every free goes back to the system, so a use after free of a
     * buffer is caught instead of hidden by the cache */
    cache_limit = 0;
    cache_limit_set = 1;
    return;
#endif
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cache_limit = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 8 : (size_t)1 << 30;
    cache_limit_set = 1;
}

/* Where blocks come from: host memory by default; a CUDA backend installs managed memory
 * (cudaMallocManaged/cudaFree) through lz_memory_set_system_allocator, so that the CPU and
 * the GPU address the same buffers and no array or op code changes. */
static void *host_alloc(size_t n) { return aligned_alloc(ALIGN, n); }
static void *(*sys_alloc)(size_t) = host_alloc;
static void (*sys_free)(void *) = free;

int lz_memory_set_system_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *)) {
    lz_memory_clear_cache();   /* cached blocks belong to the previous allocator */
    pthread_mutex_lock(&lock);
    size_t live = active;
    if (!live) {
        sys_alloc = alloc_fn ? alloc_fn : host_alloc;
        sys_free = free_fn ? free_fn : free;
    }
    pthread_mutex_unlock(&lock);
    if (live) {
        lz_fail("lz_memory_set_system_allocator: %zu bytes are live; set it before any array "
                "exists", live);
        return -1;
    }
    return 0;
}

lz_buffer *lz_buffer_alloc(size_t nbytes) {
    int idx;
    size_t size = bucket_size(nbytes, &idx);
    void *data = NULL;
    pthread_mutex_lock(&lock);
    set_default_cache_limit();
    if (limit && active + size > limit) {
        size_t a = active;
        pthread_mutex_unlock(&lock);
        lz_fail("out of memory: allocating %zu bytes would pass the limit of %zu bytes "
                "(%zu active)", size, limit, a);
        return NULL;
    }
    if (idx < NBUCKETS && free_lists[idx]) {
        block *b = free_lists[idx];
        free_lists[idx] = b->next;
        data = b->data;
        cached -= size;
        free(b);
    }
    active += size;
    if (active > peak) peak = active;
    pthread_mutex_unlock(&lock);
    if (!data) {
        data = sys_alloc(size);
        if (!data) {
            pthread_mutex_lock(&lock);
            active -= size;
            pthread_mutex_unlock(&lock);
            lz_fail("out of memory: the system refused %zu bytes", size);
            return NULL;
        }
    }
    lz_buffer *b = malloc(sizeof *b);
    if (!b) {
        sys_free(data);
        return lz_fail("out of memory");
    }
    *b = (lz_buffer){.data = data, .nbytes = nbytes, .bucket = size};
    atomic_init(&b->refs, 1);
    lz_stats_add_alloc(size);
    return b;
}

lz_buffer *lz_buffer_adopt(void *data, size_t nbytes, void (*free_fn)(void *, void *),
                           void *ctx) {
    lz_buffer *b = malloc(sizeof *b);
    if (!b) return lz_fail("out of memory");
    *b = (lz_buffer){.data = data, .nbytes = nbytes, .free_fn = free_fn, .free_ctx = ctx};
    atomic_init(&b->refs, 1);
    return b;
}

void lz_buffer_retain(lz_buffer *b) { atomic_fetch_add(&b->refs, 1); }

void lz_buffer_release(lz_buffer *b) {
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1) return;
    if (!b->bucket) {
        if (b->free_fn) b->free_fn(b->data, b->free_ctx);
        free(b);
        return;
    }
    int idx;
    size_t size = bucket_size(b->bucket, &idx);
    block *keep = NULL;
    pthread_mutex_lock(&lock);
    active -= size;
    if (idx < NBUCKETS && cached + size <= cache_limit) {
        keep = malloc(sizeof *keep);
        if (keep) {
            keep->data = b->data;
            keep->next = free_lists[idx];
            free_lists[idx] = keep;
            cached += size;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!keep) sys_free(b->data);
    free(b);
}

lz_memory_info lz_memory(void) {
    pthread_mutex_lock(&lock);
    set_default_cache_limit();
    lz_memory_info m = {active, peak, cached, limit, cache_limit};
    pthread_mutex_unlock(&lock);
    return m;
}

void lz_memory_set_limit(size_t bytes) {
    pthread_mutex_lock(&lock);
    limit = bytes;
    pthread_mutex_unlock(&lock);
}

void lz_memory_reset_peak(void) {
    pthread_mutex_lock(&lock);
    peak = active;
    pthread_mutex_unlock(&lock);
}

void lz_memory_clear_cache(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < NBUCKETS; i++) {
        while (free_lists[i]) {
            block *b = free_lists[i];
            free_lists[i] = b->next;
            sys_free(b->data);
            free(b);
        }
    }
    cached = 0;
    pthread_mutex_unlock(&lock);
}

void lz_memory_set_cache_limit(size_t bytes) {
    pthread_mutex_lock(&lock);
    cache_limit = bytes;
    cache_limit_set = 1;
    pthread_mutex_unlock(&lock);
    if (lz_memory().cached > bytes) lz_memory_clear_cache();
}
