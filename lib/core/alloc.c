/* The one allocator ("unified memory"). It owns two pools of blocks with the same size
 * buckets, cache bound, limit and counters: host memory (64-byte aligned), and device
 * memory once a GPU backend installs its functions. A buffer holds a block in either pool
 * or both, and knows which of its copies are valid (device.c moves data between them), so
 * no code above lib/core ever copies between devices.
 *
 * Each pool keeps freed blocks by bucket so a training loop stops calling malloc (or
 * cudaMalloc, which also synchronises the device) after its first step. The cache is
 * bounded (beyond cache_limit blocks go back to the system) and a limit turns an allocation
 * past it into an error instead of a crash.
 *
 * Buckets: sizes are rounded up to 4 steps per power of two (at most 25% waste), which keeps
 * a small number of distinct sizes for the cache to match. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define ALIGN 64
#define NBUCKETS 256

typedef struct block { struct block *next; void *data; } block;

typedef struct {
    const char *name;
    block *free_lists[NBUCKETS];
    size_t active, peak, cached, limit, cache_limit;
    int cache_limit_set;
    void *(*sys_alloc)(size_t);
    void (*sys_free)(void *);
} pool;

static void *host_alloc(size_t n) { return aligned_alloc(ALIGN, n); }

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pool pools[2] = {
    [LZ_CPU] = {.name = "host", .cache_limit = (size_t)-1, .sys_alloc = host_alloc, .sys_free = free},
    [LZ_GPU] = {.name = "device", .cache_limit = (size_t)-1},
};

/* A child forked while another thread holds the lock (the HDF5 probe forks while the
 * loader's thread allocates batches) would wait for it for ever: fork takes it first. */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_release(void) { pthread_mutex_unlock(&lock); }
static void register_atfork(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

static size_t bucket_size(size_t n, int *index) {
    if (n < 256) n = 256;
    int lg = 63 - __builtin_clzll((unsigned long long)n);   /* 2^lg <= n */
    size_t base = (size_t)1 << lg, step = base / 4;
    size_t k = (n - base + step - 1) / step;                 /* 0..4 */
    if (k == 4) { lg++; base <<= 1; step <<= 1; k = 0; }
    *index = (lg - 8) * 4 + (int)k;
    return base + k * step;
}

static void set_default_cache_limit(pool *p) {
    if (p->cache_limit_set) return;
#ifdef __SANITIZE_ADDRESS__
    /* under AddressSanitizer every free goes back to the system, so a use after free of a
     * buffer is caught instead of hidden by the cache */
    if (p == &pools[LZ_CPU]) {
        p->cache_limit = 0;
        p->cache_limit_set = 1;
        return;
    }
#endif
    if (p == &pools[LZ_CPU]) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        p->cache_limit = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 8 : (size_t)1 << 30;
    }
    p->cache_limit_set = 1;
}

int lz_memory_set_system_allocator(void *(*alloc_fn)(size_t), void (*free_fn)(void *)) {
    lz_memory_clear_cache();   /* cached blocks belong to the previous allocator */
    pthread_mutex_lock(&lock);
    pool *p = &pools[LZ_CPU];
    size_t live = p->active;
    if (!live) {
        p->sys_alloc = alloc_fn ? alloc_fn : host_alloc;
        p->sys_free = free_fn ? free_fn : free;
    }
    pthread_mutex_unlock(&lock);
    if (live) {
        lz_fail("lz_memory_set_system_allocator: %zu bytes are live; set it before any array "
                "exists", live);
        return -1;
    }
    return 0;
}

void lz_memory_install_device(void *(*alloc_fn)(size_t), void (*free_fn)(void *), size_t limit) {
    pthread_mutex_lock(&lock);
    pool *p = &pools[LZ_GPU];
    p->sys_alloc = alloc_fn;
    p->sys_free = free_fn;
    p->limit = limit;
    pthread_mutex_unlock(&lock);
}

static void clear_pool(pool *p) {
    for (int i = 0; i < NBUCKETS; i++) {
        while (p->free_lists[i]) {
            block *b = p->free_lists[i];
            p->free_lists[i] = b->next;
            p->sys_free(b->data);
            free(b);
        }
    }
    p->cached = 0;
}

/* A block of the bucket of n bytes from pool d (its size in *size), or NULL + error. */
void *lz_block_alloc(lz_device d, size_t n, size_t *size) {
    pool *p = &pools[d];
    int idx;
    size_t sz = bucket_size(n, &idx);
    void *data = NULL;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&lock);
    set_default_cache_limit(p);
    if (!p->sys_alloc) {
        pthread_mutex_unlock(&lock);
        return lz_fail("no %s memory: no GPU backend is running", p->name);
    }
    if (p->limit && p->active + sz > p->limit) {
        size_t a = p->active, l = p->limit;
        pthread_mutex_unlock(&lock);
        return lz_fail("out of memory (%s): allocating %zu bytes would pass the limit of %zu "
                       "bytes (%zu active)", p->name, sz, l, a);
    }
    if (idx < NBUCKETS && p->free_lists[idx]) {
        block *b = p->free_lists[idx];
        p->free_lists[idx] = b->next;
        data = b->data;
        p->cached -= sz;
        free(b);
    }
    p->active += sz;
    if (p->active > p->peak) p->peak = p->active;
    if (!data) {
        /* the system call happens under the lock: a refusal can then empty the cache and
         * try once more without racing another thread's frees */
        data = p->sys_alloc(sz);
        if (!data && p->cached) {
            clear_pool(p);
            data = p->sys_alloc(sz);
        }
        if (!data) {
            p->active -= sz;
            pthread_mutex_unlock(&lock);
            return lz_fail("out of memory (%s): the system refused %zu bytes", p->name, sz);
        }
    }
    pthread_mutex_unlock(&lock);
    lz_stats_add_alloc(sz);
    *size = sz;
    return data;
}

void lz_block_free(lz_device d, void *data, size_t n) {
    if (!data) return;
    pool *p = &pools[d];
    int idx;
    size_t sz = bucket_size(n, &idx);
    block *keep = NULL;
    pthread_mutex_lock(&lock);
    p->active -= sz;
    if (idx < NBUCKETS && p->cached + sz <= p->cache_limit) {
        keep = malloc(sizeof *keep);
        if (keep) {
            keep->data = data;
            keep->next = p->free_lists[idx];
            p->free_lists[idx] = keep;
            p->cached += sz;
        }
    }
    if (!keep) p->sys_free(data);
    pthread_mutex_unlock(&lock);
}

static lz_buffer *new_buffer(size_t nbytes) {
    lz_buffer *b = calloc(1, sizeof *b);
    if (!b) return lz_fail("out of memory");
    b->nbytes = nbytes;
    atomic_init(&b->refs, 1);
    return b;
}

lz_buffer *lz_buffer_alloc_on(lz_device d, size_t nbytes) {
    lz_buffer *b = new_buffer(nbytes);
    if (!b) return NULL;
    size_t sz;
    void *data = lz_block_alloc(d, nbytes, &sz);
    if (!data) { free(b); return NULL; }
    if (d == LZ_GPU) {
        b->dev = data;
        b->valid = LZ_VALID_DEV;
    } else {
        b->data = data;
        b->bucket = sz;
        b->valid = LZ_VALID_HOST;
    }
    return b;
}

lz_buffer *lz_buffer_alloc(size_t nbytes) { return lz_buffer_alloc_on(LZ_CPU, nbytes); }

lz_buffer *lz_buffer_adopt(void *data, size_t nbytes, void (*free_fn)(void *, void *),
                           void *ctx) {
    lz_buffer *b = new_buffer(nbytes);
    if (!b) return NULL;
    b->data = data;
    b->valid = LZ_VALID_HOST;
    b->free_fn = free_fn;
    b->free_ctx = ctx;
    return b;
}

void lz_buffer_retain(lz_buffer *b) { atomic_fetch_add(&b->refs, 1); }

void lz_buffer_release(lz_buffer *b) {
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1) return;
    if (b->dev) lz_block_free(LZ_GPU, b->dev, b->nbytes);
    if (b->bucket) {
        lz_block_free(LZ_CPU, b->data, b->bucket);
    } else if (b->data && b->free_fn) {
        b->free_fn(b->data, b->free_ctx);
    }
    free(b);
}

static lz_memory_info info(pool *p) {
    pthread_mutex_lock(&lock);
    set_default_cache_limit(p);
    lz_memory_info m = {p->active, p->peak, p->cached, p->limit, p->cache_limit};
    pthread_mutex_unlock(&lock);
    return m;
}

lz_memory_info lz_memory(void) { return info(&pools[LZ_CPU]); }
lz_memory_info lz_memory_device(void) { return info(&pools[LZ_GPU]); }

static void set_limit(pool *p, size_t bytes) {
    pthread_mutex_lock(&lock);
    p->limit = bytes;
    pthread_mutex_unlock(&lock);
}
void lz_memory_set_limit(size_t bytes) { set_limit(&pools[LZ_CPU], bytes); }
void lz_memory_device_set_limit(size_t bytes) { set_limit(&pools[LZ_GPU], bytes); }

static void reset_peak(pool *p) {
    pthread_mutex_lock(&lock);
    p->peak = p->active;
    pthread_mutex_unlock(&lock);
}
void lz_memory_reset_peak(void) { reset_peak(&pools[LZ_CPU]); }
void lz_memory_device_reset_peak(void) { reset_peak(&pools[LZ_GPU]); }

void lz_memory_clear_cache(void) {
    pthread_mutex_lock(&lock);
    clear_pool(&pools[LZ_CPU]);
    if (pools[LZ_GPU].sys_free) clear_pool(&pools[LZ_GPU]);
    pthread_mutex_unlock(&lock);
}

static void set_cache_limit(pool *p, size_t bytes) {
    pthread_mutex_lock(&lock);
    p->cache_limit = bytes;
    p->cache_limit_set = 1;
    if (p->cached > bytes && p->sys_free) clear_pool(p);
    pthread_mutex_unlock(&lock);
}
void lz_memory_set_cache_limit(size_t bytes) { set_cache_limit(&pools[LZ_CPU], bytes); }
void lz_memory_device_set_cache_limit(size_t bytes) { set_cache_limit(&pools[LZ_GPU], bytes); }
