/* The batch loader: epochs in an order that depends on (seed, epoch) only, batches read by
 * hyperslab (or from a preloaded split), converted to float and augmented, and produced
 * ahead of time by one background thread into a small ring.
 *
 * Who touches what: the producer state (epoch, batch, permutation, staging buffers, the
 * dataset handle) belongs to the producer thread while it runs, or to lz_loader_next when
 * prefetch is 0; lz_loader_seek and lz_loader_close join the thread before touching it.
 * The ring is shared under `mu`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/philox.h"
#include "data/data.h"
#include "data/h5.h"
#include "ops/ops.h"

/* Streams of the loader's random choices, folded into the seed's key. */
enum { TAG_SHUFFLE = 0x5348554655ull, TAG_AUGMENT = 0x4155474du, TAG_WINDOW = 0x57494e44u };

enum { ITEM_BATCH, ITEM_END, ITEM_ERROR };
typedef struct {
    int kind;
    lz_batch b;
    char msg[1024];
} item;

struct lz_loader {
    lz_dataset *ds;
    const lz_data_info *info;
    lz_loader_options o;
    float *scale, *bias;            /* per channel: x = pixel * scale + bias */
    int64_t nitems, nbatches;       /* examples (or windows) and batches per epoch */
    /* producer state */
    int64_t epoch, batch;
    int64_t *perm, perm_epoch;
    uint8_t *stage;
    int32_t *window;
    /* the ring */
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t can_put, can_get;
    item *ring;
    int cap, head, count, stop, done;
    char error[1024];               /* why the producer thread stopped */
};

lz_loader_options lz_loader_defaults(void) {
    return (lz_loader_options){.batch_size = 64, .shuffle = 1, .prefetch = 2,
                               .preload_bytes = (int64_t)256 << 20};
}

void lz_batch_release(lz_batch *b) {
    if (!b) return;
    lz_release(b->x);
    lz_release(b->y);
    lz_release(b->ids);
    memset(b, 0, sizeof *b);
}

static lz_key epoch_key(uint64_t seed, uint64_t tag, int64_t epoch) {
    return lz_key_fold(lz_key_fold(lz_key_new(seed), tag), (uint64_t)epoch);
}

/* 64 random bits, the first two words of block `i` of the key's stream. */
static uint64_t bits64(lz_key k, uint64_t i, uint32_t w[4]) {
    lz_rng_block(k.hi, k.lo, i, w);
    return (uint64_t)w[0] | (uint64_t)w[1] << 32;
}

/* [0, n) by a 64x64 -> 128 bit multiply: bias below n / 2^64, far beyond what an order of
 * examples can show. */
static int64_t below(uint64_t r, int64_t n) {
    return (int64_t)(((unsigned __int128)r * (uint64_t)n) >> 64);
}

void lz_data_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm) {
    lz_key k = epoch_key(seed, TAG_SHUFFLE, epoch);
    uint32_t w[4];
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {   /* Fisher-Yates, draw i from block i */
        int64_t j = below(bits64(k, (uint64_t)i, w), i + 1);
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* ---- making one batch ---- */

/* New evaluated arrays owned by the caller (never by a pool the caller may have open). */
static lz_array *owned_empty(int ndim, const int64_t *shape, lz_dtype t) {
    lz_pool_push();
    lz_array *a = lz_retain(lz_empty(ndim, shape, t));
    lz_pool_pop();
    return a;
}

/* Pixels of B examples (uint8 [B,H,W,C] in src) into x, scaled, normalised and augmented.
 * The augmentation of the example at position p of the epoch uses block p of the epoch's
 * key: words 0, 1 the crop offsets, word 2 the flip. */
static void convert(lz_loader *l, const uint8_t *src, void *out, int64_t B, int64_t first) {
    const lz_data_info *in = l->info;
    int H = in->height, W = in->width, C = in->channels, P = l->o.crop_padding;
    int64_t hwc = (int64_t)H * W * C, hw = (int64_t)H * W;
    int nhwc = l->o.channels_last || l->o.raw || C == 1, augment = P > 0 || l->o.hflip;
    lz_key k = epoch_key(l->o.seed, TAG_AUGMENT, l->epoch);
    float *f = l->o.raw ? NULL : out;
    uint8_t *u = l->o.raw ? out : NULL;
    for (int64_t i = 0; i < B; i++) {
        const uint8_t *s = src + i * hwc;
        int64_t o0 = i * hwc;
        if (!augment) {
            if (u) { memcpy(u + o0, s, (size_t)hwc); continue; }
            if (nhwc)
                for (int64_t j = 0; j < hwc; j++) f[o0 + j] = s[j] * l->scale[j % C] + l->bias[j % C];
            else
                for (int c = 0; c < C; c++)
                    for (int64_t p = 0; p < hw; p++)
                        f[o0 + c * hw + p] = s[p * C + c] * l->scale[c] + l->bias[c];
            continue;
        }
        uint32_t w[4];
        lz_rng_block(k.hi, k.lo, (uint64_t)(first + i), w);
        int dy = P ? (int)(w[0] % (uint32_t)(2 * P + 1)) - P : 0;
        int dx = P ? (int)(w[1] % (uint32_t)(2 * P + 1)) - P : 0;
        int flip = l->o.hflip && (w[2] & 1);
        for (int y = 0; y < H; y++) {
            int sy = y + dy;
            for (int x = 0; x < W; x++) {
                int sx = (flip ? W - 1 - x : x) + dx;
                int inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
                const uint8_t *px = s + ((int64_t)sy * W + sx) * C;
                for (int c = 0; c < C; c++) {
                    uint8_t v = inside ? px[c] : 0;   /* padding is black, before scaling */
                    int64_t o = nhwc ? ((int64_t)y * W + x) * C + c : (int64_t)c * hw + (int64_t)y * W + x;
                    if (u) u[o0 + o] = v;
                    else f[o0 + o] = v * l->scale[c] + l->bias[c];
                }
            }
        }
    }
}

/* This loader's slice [*first, *first + return) of the current batch (the whole batch
 * unsharded); *total gets the batch's size. */
static int64_t shard_slice(const lz_loader *l, int64_t *first, int64_t *total) {
    int64_t bs = l->o.batch_size, start = l->batch * bs;
    int64_t M = l->nitems - start < bs ? l->nitems - start : bs, S = l->o.shards > 1 ? l->o.shards : 1;
    int64_t r = S > 1 ? l->o.shard : 0, lo = M * r / S, hi = M * (r + 1) / S;
    *first = start + lo;
    *total = M;
    return hi - lo;
}

static int image_batch(lz_loader *l, lz_batch *b) {
    const lz_data_info *in = l->info;
    int64_t first, B = shard_slice(l, &first, &b->total);
    if (l->o.shuffle && l->perm_epoch != l->epoch) {
        lz_data_permutation(l->o.seed, l->epoch, l->nitems, l->perm);
        l->perm_epoch = l->epoch;
    }
    int H = in->height, W = in->width, C = in->channels;
    int64_t xs[4] = {B, C, H, W};
    if (l->o.raw || l->o.channels_last) { xs[1] = H; xs[2] = W; xs[3] = C; }
    b->ids = owned_empty(1, &B, LZ_I64);
    b->x = owned_empty(4, xs, l->o.raw ? LZ_U8 : LZ_F32);
    b->y = in->has_labels ? owned_empty(1, &B, LZ_I32) : NULL;
    if (!b->ids || !b->x || (in->has_labels && !b->y)) {
        lz_fail("%s: cannot allocate a batch: %s", in->path, lz_error());
        return -1;
    }
    int64_t *ids = lz_data_mut(b->ids);
    for (int64_t i = 0; i < B; i++) ids[i] = l->o.shuffle ? l->perm[first + i] : first + i;
    int direct = l->o.raw && !l->o.crop_padding && !l->o.hflip;   /* read straight into x */
    uint8_t *dst = direct ? lz_data_mut(b->x) : l->stage;
    if (lz_dataset_read_images(l->ds, B, ids, dst, b->y ? lz_data_mut(b->y) : NULL)) return -1;
    if (!direct) convert(l, l->stage, lz_data_mut(b->x), B, first);
    b->size = B;
    return 0;
}

static int text_batch(lz_loader *l, lz_batch *b) {
    int64_t first, ctx = l->o.context;
    int64_t B = shard_slice(l, &first, &b->total);
    int64_t shape[2] = {B, ctx};
    b->ids = owned_empty(1, &B, LZ_I64);
    b->x = owned_empty(2, shape, LZ_I32);
    b->y = owned_empty(2, shape, LZ_I32);
    if (!b->ids || !b->x || !b->y) {
        lz_fail("%s: cannot allocate a batch: %s", l->info->path, lz_error());
        return -1;
    }
    int64_t *ids = lz_data_mut(b->ids);
    int32_t *x = lz_data_mut(b->x), *y = lz_data_mut(b->y);
    lz_key k = epoch_key(l->o.seed, TAG_WINDOW, l->epoch);
    uint32_t w[4];
    for (int64_t i = 0; i < B; i++) {
        int64_t p = first + i;
        ids[i] = l->o.shuffle ? below(bits64(k, (uint64_t)p, w), l->info->length - ctx) : p * ctx;
        if (lz_dataset_read_tokens(l->ds, ids[i], ctx + 1, l->window)) return -1;
        memcpy(x + i * ctx, l->window, (size_t)ctx * 4);
        memcpy(y + i * ctx, l->window + 1, (size_t)ctx * 4);
    }
    b->size = B;
    return 0;
}

/* The next item of the stream: a batch, or the end of the epoch (then the next epoch). */
static void produce(lz_loader *l, item *it) {
    memset(&it->b, 0, sizeof it->b);
    if (l->batch >= l->nbatches) {
        it->kind = ITEM_END;
        l->epoch++;
        l->batch = 0;
        return;
    }
    it->b.epoch = l->epoch;
    it->b.index = l->batch;
    int r = l->info->kind == LZ_DATA_IMAGES ? image_batch(l, &it->b) : text_batch(l, &it->b);
    if (r) {
        lz_batch_release(&it->b);
        it->kind = ITEM_ERROR;
        snprintf(it->msg, sizeof it->msg, "%s", lz_error());
        return;
    }
    it->kind = ITEM_BATCH;
    l->batch++;
}

/* ---- the prefetch thread ---- */

static void *producer(void *arg) {
    lz_loader *l = arg;
    h5_quiet();   /* per thread in a thread-safe HDF5 */
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->count == l->cap) pthread_cond_wait(&l->can_put, &l->mu);
        if (l->stop) break;
        pthread_mutex_unlock(&l->mu);
        item it;
        produce(l, &it);
        pthread_mutex_lock(&l->mu);
        if (l->stop) { lz_batch_release(&it.b); break; }
        l->ring[(l->head + l->count) % l->cap] = it;
        l->count++;
        pthread_cond_signal(&l->can_get);
        if (it.kind == ITEM_ERROR) {   /* stop here; lz_loader_seek starts again */
            snprintf(l->error, sizeof l->error, "%s", it.msg);
            break;
        }
    }
    l->done = 1;
    pthread_cond_broadcast(&l->can_get);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int start(lz_loader *l) {
    if (!l->cap) return 0;
    l->stop = l->done = 0;
    l->head = l->count = 0;
    if (pthread_create(&l->thread, NULL, producer, l)) {
        lz_fail("%s: cannot start the prefetch thread", l->info->path);
        return -1;
    }
    l->running = 1;
    return 0;
}

static void stop(lz_loader *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->can_put);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = 0;
    for (int i = 0; i < l->count; i++) lz_batch_release(&l->ring[(l->head + i) % l->cap].b);
    l->head = l->count = 0;
}

/* ---- public ---- */

#define FAIL(...) do { lz_fail(__VA_ARGS__); goto fail; } while (0)

lz_loader *lz_loader_open(const char *path, const char *split, const lz_loader_options *opt) {
    lz_loader_options o = opt ? *opt : lz_loader_defaults();
    lz_dataset *ds = lz_dataset_open(path, split);
    if (!ds) return NULL;
    lz_loader *l = calloc(1, sizeof *l);
    if (!l) { lz_dataset_close(ds); return lz_fail("%s: out of memory", path); }
    l->ds = ds;
    l->info = lz_dataset_info(ds);
    l->perm_epoch = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->can_put, NULL);
    pthread_cond_init(&l->can_get, NULL);
    const lz_data_info *in = l->info;
    if (o.batch_size < 1) FAIL("%s: batch size %lld, expected at least 1", path, (long long)o.batch_size);
    if (o.prefetch < 0) FAIL("%s: prefetch %d, expected 0 or more", path, o.prefetch);
    if (in->kind == LZ_DATA_TEXT) {
        if (o.crop_padding || o.hflip || o.nnorm || o.raw || o.channels_last)
            FAIL("%s: split '%s' holds text: augmentation, normalisation and image layouts do "
                 "not apply", path, split);
        if (o.context < 1) FAIL("%s: split '%s' holds text: a context of at least 1 token is "
                                "needed, got %lld", path, split, (long long)o.context);
        if (in->length < o.context + 1)
            FAIL("%s: split '%s' has %lld tokens, fewer than context + 1 = %lld", path, split,
                 (long long)in->length, (long long)(o.context + 1));
        l->nitems = (in->length - 1) / o.context;
        l->window = malloc((size_t)(o.context + 1) * 4);
    } else {
        int C = in->channels;
        if (o.crop_padding < 0) FAIL("%s: crop padding %d, expected 0 or more", path, o.crop_padding);
        if (o.nnorm && o.raw) FAIL("%s: normalisation does not apply to raw (uint8) images", path);
        if (o.nnorm != 0 && o.nnorm != 1 && o.nnorm != C)
            FAIL("%s: %d normalisation values for images with %d channel%s (give 1 or %d)", path,
                 o.nnorm, C, C == 1 ? "" : "s", C);
        l->scale = malloc((size_t)C * sizeof(float));
        l->bias = malloc((size_t)C * sizeof(float));
        if (!l->scale || !l->bias) FAIL("%s: out of memory", path);
        for (int c = 0; c < C; c++) {
            double m = o.nnorm ? o.mean[o.nnorm == 1 ? 0 : c] : 0, s = o.nnorm ? o.std[o.nnorm == 1 ? 0 : c] : 1;
            if (!(s > 0)) FAIL("%s: normalisation std %g of channel %d must be positive", path, s, c);
            l->scale[c] = (float)(1.0 / (255.0 * s));
            l->bias[c] = (float)(-m / s);
        }
        o.mean = o.std = NULL;   /* copied into scale/bias; the caller's arrays may go */
        l->nitems = in->length;
        l->perm = o.shuffle ? malloc((size_t)in->length * sizeof(int64_t)) : NULL;
        l->stage = malloc((size_t)(o.batch_size * (int64_t)in->height * in->width * C));
        if ((o.shuffle && !l->perm) || !l->stage) FAIL("%s: out of memory", path);
    }
    if (o.shards > 1 && (o.shard < 0 || o.shard >= o.shards))
        FAIL("%s: shard %lld of %lld, expected 0 to %lld", path, (long long)o.shard,
             (long long)o.shards, (long long)o.shards - 1);
    if (o.shards > 1 && o.batch_size < o.shards)
        FAIL("%s: batch size %lld is smaller than the %lld shards", path, (long long)o.batch_size,
             (long long)o.shards);
    l->o = o;
    /* sharded: a last batch too small to give every shard an example is left out */
    int64_t rest = l->nitems % o.batch_size;
    l->nbatches = l->nitems / o.batch_size + (!o.drop_last && rest >= (o.shards > 1 ? o.shards : 1));
    if (!l->nbatches)
        FAIL("%s: split '%s' has %lld %s, fewer than one batch of %lld (drop_last is on)", path,
             split, (long long)l->nitems, in->kind == LZ_DATA_TEXT ? "windows" : "examples",
             (long long)o.batch_size);
    if (lz_dataset_bytes(ds) <= o.preload_bytes && lz_dataset_preload(ds)) goto fail;
    l->cap = o.prefetch;
    if (l->cap && !(l->ring = calloc((size_t)l->cap, sizeof(item)))) FAIL("%s: out of memory", path);
    if (start(l)) goto fail;
    return l;
fail:
    lz_loader_close(l);
    return NULL;
}

void lz_loader_close(lz_loader *l) {
    if (!l) return;
    stop(l);
    lz_dataset_close(l->ds);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->can_put);
    pthread_cond_destroy(&l->can_get);
    free(l->ring); free(l->scale); free(l->bias); free(l->perm); free(l->stage); free(l->window);
    free(l);
}

const lz_data_info *lz_loader_info(const lz_loader *l) { return l ? l->info : NULL; }
int64_t lz_loader_batches(const lz_loader *l) { return l ? l->nbatches : 0; }

int lz_loader_next(lz_loader *l, lz_batch *b) {
    memset(b, 0, sizeof *b);
    item it;
    if (!l->cap) {
        h5_quiet();
        produce(l, &it);
    } else {
        pthread_mutex_lock(&l->mu);
        while (!l->count && !l->done) pthread_cond_wait(&l->can_get, &l->mu);
        if (!l->count) {
            pthread_mutex_unlock(&l->mu);
            lz_fail("%s (the loader stopped there; lz_loader_seek restarts it)", l->error);
            return -1;
        }
        it = l->ring[l->head];
        l->head = (l->head + 1) % l->cap;
        l->count--;
        pthread_cond_signal(&l->can_put);
        pthread_mutex_unlock(&l->mu);
    }
    if (it.kind == ITEM_ERROR) { lz_fail("%s", it.msg); return -1; }
    if (it.kind == ITEM_END) return 0;
    *b = it.b;
    return 1;
}

int lz_loader_seek(lz_loader *l, int64_t epoch, int64_t batch) {
    if (epoch < 0 || batch < 0 || batch > l->nbatches) {
        lz_fail("%s: cannot seek to epoch %lld batch %lld (an epoch has %lld batches)",
                l->info->path, (long long)epoch, (long long)batch, (long long)l->nbatches);
        return -1;
    }
    stop(l);
    l->epoch = epoch;
    l->batch = batch;
    return start(l);
}
