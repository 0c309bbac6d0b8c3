/* Devices: the default device ops run on, the GPU backend's start, and moving a buffer's
 * value between its host and device copies ("unified memory" as the user sees it). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

static pthread_once_t started = PTHREAD_ONCE_INIT;
static const lz_gpu_backend *gpu;
static char gpu_why[256] = "not started";

static void start(void) {
    gpu = lz_cuda_start();
    if (!gpu) {
        snprintf(gpu_why, sizeof gpu_why, "%s", lz_error());
        lz_error_clear();
    } else {
        snprintf(gpu_why, sizeof gpu_why, "%s", gpu->name);
    }
}

const lz_gpu_backend *lz_gpu(void) { return gpu; }

void lz_gpu_install(const lz_gpu_backend *b) {
    pthread_once(&started, start);
    gpu = b;
    snprintf(gpu_why, sizeof gpu_why, "%s", b ? b->name : "none installed");
}

int lz_gpu_available(void) {
    pthread_once(&started, start);
    return gpu != NULL;
}

const char *lz_gpu_status(void) {
    pthread_once(&started, start);
    return gpu_why;
}

const char *lz_device_name(lz_device d) { return d == LZ_GPU ? "cuda" : "cpu"; }

/* The process default: $LZ_DEVICE the first time it is asked for, unless set before. */
static _Atomic lz_device process_device = LZ_DEVICE_UNSET;
static _Thread_local lz_device thread_device = LZ_DEVICE_UNSET;
static pthread_mutex_t device_lock = PTHREAD_MUTEX_INITIALIZER;

static int check(lz_device d, const char *fn) {
    if (d != LZ_CPU && d != LZ_GPU) {
        lz_fail("%s: unknown device %d", fn, (int)d);
        return -1;
    }
    if (d == LZ_GPU && !lz_gpu_available()) {
        lz_fail("%s: no GPU (%s)", fn, gpu_why);
        return -1;
    }
    return 0;
}

static lz_device from_env(void) {
    const char *e = getenv("LZ_DEVICE");
    if (!e || !*e || !strcmp(e, "cpu")) return LZ_CPU;
    /* auto, cuda, gpu: the GPU when there is one; without, ops stay on the CPU and
     * lz_default_device says so (the programs check and refuse) */
    return lz_gpu_available() ? LZ_GPU : LZ_CPU;
}

int lz_set_default_device(lz_device d) {
    if (check(d, "lz_set_default_device")) return -1;
    pthread_mutex_lock(&device_lock);
    atomic_store(&process_device, d);
    pthread_mutex_unlock(&device_lock);
    return 0;
}

int lz_set_thread_device(lz_device d) {
    if (d != LZ_DEVICE_UNSET && check(d, "lz_set_thread_device")) return -1;
    thread_device = d;
    return 0;
}

lz_device lz_default_device(void) {
    if (thread_device != LZ_DEVICE_UNSET) return thread_device;
    lz_device d = atomic_load_explicit(&process_device, memory_order_acquire);
    if (d != LZ_DEVICE_UNSET) return d;   /* every node asks: no lock once it is known */
    pthread_mutex_lock(&device_lock);
    if (process_device == LZ_DEVICE_UNSET) atomic_store(&process_device, from_env());
    d = process_device;
    pthread_mutex_unlock(&device_lock);
    return d;
}

void lz_synchronize(void) {
    if (gpu) gpu->synchronize();
}

/* One lock for moving copies: a reader on another thread (a metrics hook, the loader) and
 * eval may reach the same buffer. */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;

int lz_buffer_sync(lz_buffer *b, lz_device d) {
    int bit = d == LZ_GPU ? LZ_VALID_DEV : LZ_VALID_HOST;
    if (b->valid & bit) return 0;
    if (!gpu) {
        lz_fail("a buffer's value is on a GPU that is not running");
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&sync_lock);
    if (!(b->valid & bit)) {
        size_t sz;
        if (d == LZ_GPU) {
            if (!b->dev && !(b->dev = lz_block_alloc(LZ_GPU, b->nbytes, &sz))) rc = -1;
            if (!rc) rc = gpu->to_device(b);
            if (!rc) lz_stats_add_copy(LZ_GPU, b->nbytes);
        } else {
            if (!b->data) {
                if (!(b->data = lz_block_alloc(LZ_CPU, b->nbytes, &sz))) rc = -1;
                else b->bucket = sz;
            }
            if (!rc) rc = gpu->to_host(b);
            if (!rc) lz_stats_add_copy(LZ_CPU, b->nbytes);
        }
        if (!rc) b->valid |= bit;
    }
    pthread_mutex_unlock(&sync_lock);
    return rc;
}

const void *lz_host_ptr(lz_array *a) {
    if (!a || !a->buf) return lz_fail("array has no data");
    if (lz_buffer_sync(a->buf, LZ_CPU)) return NULL;
    return lz_elem_ptr(a);
}
