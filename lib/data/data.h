/* leibniz data: HDF5 datasets, their writers and converters, and the batch loader.
 *
 * A dataset is one HDF5 file with a group per split (/train, /test, /val) holding named
 * arrays, and attributes on the root group for what a model needs (datasets/README.md is
 * the full description):
 *   images  uint8 [N,H,W] or [N,H,W,C]    labels  uint8 or int32 [N] (optional)
 *   tokens  uint16 or int32 [T]           (a text split: one long token stream)
 *   root attributes: classes, vocab (string lists), mean, std (per channel, pixels / 255),
 *   name, source, format = "leibniz-dataset", version = 1.
 * The loader reads batches by hyperslab, so a split larger than memory works; it reads a
 * split whole only when it is small (lz_loader_options.preload_bytes).
 *
 * Errors: every function that can fail returns NULL or -1 and leaves one sentence in
 * lz_error() that starts with the file name. Nothing here prints or exits. HDF5's own error
 * printing is switched off on every thread that calls in here. */
#ifndef LZ_DATA_H
#define LZ_DATA_H

#include <stdint.h>
#include "core/core.h"

/* ---- reading a split ---- */
typedef enum { LZ_DATA_IMAGES = 1, LZ_DATA_TEXT = 2 } lz_data_kind;

typedef struct {
    const char *path, *split;
    lz_data_kind kind;
    int64_t length;                 /* images: examples N; text: tokens T */
    int height, width, channels;    /* images; channels is 1 for [N,H,W] */
    int has_labels;
    int num_classes;                /* entries of the `classes` attribute; 0: absent */
    const char *const *classes;
    int vocab_size;                 /* entries of the `vocab` attribute; 0: absent */
    const char *const *vocab;       /* token id -> its UTF-8 text */
    int nstats;                     /* entries of `mean`/`std` (channels); 0: absent */
    const double *mean, *std;
    const char *name;               /* attribute `name`, "" when absent */
} lz_data_info;

typedef struct lz_dataset lz_dataset;

/* Opens one split and checks it: the arrays it needs, their dtypes, ranks and lengths, an
 * empty split, a truncated or non-HDF5 file. Returns NULL with lz_error() set. The caller
 * frees with lz_dataset_close. A handle is used by one thread at a time. */
lz_dataset *lz_dataset_open(const char *path, const char *split);
void lz_dataset_close(lz_dataset *ds);                       /* NULL-safe */
const lz_data_info *lz_dataset_info(const lz_dataset *ds);   /* valid until close */
/* Names of the splits (groups at the root) of a file, sorted; *names is one malloc'd block
 * (free(*names) frees all). Returns the count, or -1. */
int lz_dataset_splits(const char *path, char ***names);

/* Examples idx[0..n) of an image split, in that order (indices may repeat): images into
 * `images` (n*H*W*C bytes, row-major [n,H,W,C]) and labels into `labels` (NULL to skip).
 * One HDF5 read of the union of the rows (sorted), so only their chunks are touched.
 * Labels outside [0, num_classes) are an error naming the example. Returns 0 or -1. */
int lz_dataset_read_images(lz_dataset *ds, int64_t n, const int64_t *idx, uint8_t *images,
                           int32_t *labels);
/* Tokens [start, start+count) of a text split as int32 (checked against vocab_size). */
int lz_dataset_read_tokens(lz_dataset *ds, int64_t start, int64_t count, int32_t *out);
/* Reads the whole split into memory once; later reads come from there. The loader does this
 * for splits up to preload_bytes. Returns 0 or -1. */
int lz_dataset_preload(lz_dataset *ds);
int64_t lz_dataset_bytes(const lz_dataset *ds);   /* in-memory size of the whole split */

/* ---- the loader ---- */
typedef struct {
    int64_t batch_size;     /* examples (images) or sequences (text) per batch, > 0 */
    int shuffle;            /* images: a new order every epoch; text: random windows */
    uint64_t seed;          /* the order depends on (seed, epoch) only */
    int drop_last;          /* skip a last batch that is not full */
    int prefetch;           /* batches prepared ahead on a background thread; 0: none */
    int64_t context;        /* text: tokens per sequence (windows of context+1 tokens) */
    int raw;                /* images: uint8 as stored, [B,H,W,C], no scaling */
    int channels_last;      /* images: float [B,H,W,C] instead of [B,C,H,W] */
    /* Images: x = (pixel/255 - mean[c]) / std[c]. nnorm 0: pixel/255 only; 1: the same
     * values for every channel; else one per channel. Copied at open. */
    int nnorm;
    const double *mean, *std;
    int crop_padding;       /* pad by this many zero pixels, crop back at a random offset */
    int hflip;              /* flip left-right with probability 1/2 */
    int64_t preload_bytes;  /* splits up to this size are read whole once; 0: always stream */
    /* Data parallelism: with shards > 1 each batch is the same batch as without (batch_size
     * examples in the same order), of which this loader yields only slice `shard` of
     * `shards` (contiguous, sizes differing by one at most). Epochs keep one order for every
     * number of shards; a last batch with fewer examples than shards is left out. 0 or 1:
     * whole batches. */
    int64_t shards, shard;
} lz_loader_options;

/* batch_size 64, shuffle on, seed 0, keep-last, prefetch 2, no augmentation,
 * preload_bytes 256 MiB. */
lz_loader_options lz_loader_defaults(void);

/* One batch. x and y are new references: release them with lz_batch_release.
 *   images: x f32 [B,C,H,W] (or as the options say), y int32 [B] (NULL without labels)
 *   text:   x int32 [B,context] and y int32 [B,context], y the window shifted by one.
 * ids int64 [B]: the example indices (images) or window starts (text) it was read from. */
typedef struct {
    lz_array *x, *y, *ids;
    int64_t size, epoch, index;
    int64_t total;          /* examples of the whole batch, over every shard (= size unsharded) */
} lz_batch;
void lz_batch_release(lz_batch *b);   /* releases x, y, ids; zeroes b */

typedef struct lz_loader lz_loader;

/* Opens split `split` of the dataset at path for batches (options NULL: defaults).
 * Returns NULL with lz_error() set. Close with lz_loader_close. */
lz_loader *lz_loader_open(const char *path, const char *split, const lz_loader_options *o);
/* Stops and joins the prefetch thread, releases batches not taken. NULL-safe. */
void lz_loader_close(lz_loader *l);
const lz_data_info *lz_loader_info(const lz_loader *l);
/* Batches per epoch. Images: ceil(N/B) (floor with drop_last). Text: the epoch has
 * (T-1)/context windows (one pass over the tokens), grouped the same way. */
int64_t lz_loader_batches(const lz_loader *l);
/* 1: *b holds the next batch; 0: the epoch ended (the next call starts the next epoch);
 * -1: error (lz_error() set; the loader stays usable after lz_loader_seek). */
int lz_loader_next(lz_loader *l, lz_batch *b);
/* The next lz_loader_next returns batch `batch` of epoch `epoch` (resuming a run exactly). */
int lz_loader_seek(lz_loader *l, int64_t epoch, int64_t batch);

/* The order of an epoch: perm[0..n) a permutation of 0..n-1 that depends on (seed, epoch)
 * only (Fisher-Yates driven by the Philox stream of a key folded from both). */
void lz_data_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);

/* ---- writing datasets ---- */
typedef enum { LZ_STORE_U8, LZ_STORE_U16, LZ_STORE_I32 } lz_store_type;
typedef struct lz_data_writer lz_data_writer;

/* Writes into a temporary file beside `path`; lz_data_writer_close(w, 1) renames it into
 * place, so an interrupted conversion never leaves a half file nor touches an existing one.
 * gzip: 0 (none, fastest random reads) to 9. Returns NULL with lz_error() set. */
lz_data_writer *lz_data_writer_create(const char *path, int gzip);
/* A new array /split/name of the given element type and shape, chunked along the first
 * axis (about 64 KiB a chunk). Returns its id (>= 0) or -1. */
int lz_data_writer_array(lz_data_writer *w, const char *split, const char *name,
                         lz_store_type t, int ndim, const int64_t *shape);
/* Rows [row0, row0+nrows) of array id from data (native values of its type, row-major). */
int lz_data_writer_put(lz_data_writer *w, int id, int64_t row0, int64_t nrows, const void *data);
/* Root attributes. */
int lz_data_writer_attr_string(lz_data_writer *w, const char *name, const char *value);
int lz_data_writer_attr_strings(lz_data_writer *w, const char *name, int n, const char *const *v);
int lz_data_writer_attr_doubles(lz_data_writer *w, const char *name, int n, const double *v);
/* commit 1: flush, close and rename into place; 0: discard. Frees w either way. */
int lz_data_writer_close(lz_data_writer *w, int commit);

/* ---- converters (lib/data/convert.c) ---- */
/* Decodes one image file into 8-bit gray (channels 1) or RGB (channels 3), rows top to
 * bottom; *pixels is malloc'd (the converter frees it). Returns 0, or -1 with lz_error().
 * lib/data does not depend on lib/io: the caller passes a PNG reader (datasets/lz-data.c
 * wraps lz_png_read). */
typedef int (*lz_image_reader)(const char *path, int *width, int *height, int *channels,
                               uint8_t **pixels);

typedef struct {
    const char *name, *source;    /* root attributes; NULL: none */
    int gzip;                     /* 0 (none: fastest random reads) .. 9 */
    const char *const *classes;   /* IDX: class names (num_classes entries), or NULL */
    int num_classes;
    /* image folders */
    lz_image_reader read_image;
    int channels;                 /* 0: as the first image (gray or RGB); 1 or 3: convert */
    const char *split;            /* a folder of class folders only: its split (train) */
    /* text */
    double val_fraction;          /* share of the tokens, at the end, that go to /val */
    /* A given character vocabulary (e.g. a checkpoint's, to fine-tune it on new text), in its
     * order; NULL: the text's own characters. With one, every character outside it is mapped
     * to a near character that is in it, or dropped (see lz_convert_text). */
    const char *const *vocab;
    int vocab_size;
    /* Rules "FROM=TO" applied to each character first: every character of FROM becomes TO
     * (one character, or none: dropped), e.g. "0123456789=" drops digits. */
    const char *const *maps;
    int nmaps;
    struct lz_text_stats *stats;  /* when not NULL: what the mapping did */
} lz_convert_options;

/* What lz_convert_text did to the characters of the text. */
typedef struct { int32_t from, to; int64_t count; } lz_text_map_entry;   /* to: -1 dropped */
typedef struct lz_text_stats {
    int64_t chars, tokens;        /* characters read; tokens written */
    int64_t mapped, dropped;      /* characters replaced by another; characters left out */
    int64_t spaces_removed;       /* spaces a dropped character would have left doubled */
    int n;                        /* entries below, most frequent first */
    lz_text_map_entry entries[64];
    int64_t others;               /* mapped or dropped characters beyond the 64 entries */
} lz_text_stats;

/* IDX files (uncompressed) to a dataset: /splits[k]/images from images_idx[k] and
 * /splits[k]/labels from labels_idx[k] (NULL: none). mean/std are those of split 0. Classes
 * default to "0".."K-1" with K = the largest label + 1. Returns 0 or -1. */
int lz_convert_idx(const char *out, int nsplits, const char *const *splits,
                   const char *const *images_idx, const char *const *labels_idx,
                   const lz_convert_options *o);
/* Images in class folders: DIR/CLASS/FILE.png for one split (o->split), or
 * DIR/SPLIT/CLASS/FILE.png with SPLIT among train, val, test. Classes are the folder names
 * sorted (the union over splits); files are taken in name order; all images must have one
 * size. mean/std are those of train (or the first split). */
int lz_convert_images(const char *out, const char *dir, const lz_convert_options *o);
/* A UTF-8 text file to a character-level dataset: the vocabulary is the distinct characters
 * sorted by code point; the first (1 - val_fraction) of the tokens go to /train, the rest to
 * /val (none when val_fraction is 0). Tokens are uint16 when the vocabulary allows.
 * o->maps rewrite characters first. With o->vocab, the dataset's vocabulary is exactly that
 * one (each entry one character), and a character outside it becomes the first of its near
 * characters that is in it: quotes ` " and typographic quotes -> ' (or "), brackets -> another
 * kind of bracket, dashes -> '-' (or ' '), '...' -> '.', ';' ':' -> ',', '!' '?' -> '.', tabs and
 * other spaces -> ' ', accented Latin letters -> the plain letter, a letter -> its other case;
 * otherwise it is dropped. A dropped character leaves no doubled space behind: a space after
 * it is left out when the previous one was a space or a newline, and a space before it when
 * punctuation (, . ; : ! ?) or a newline follows; a space made by the mapping is left out next
 * to another space. */
int lz_convert_text(const char *out, const char *text_file, const lz_convert_options *o);
/* The vocabulary stored in path: the "vocab" attribute of a text dataset (a list of strings)
 * or of a checkpoint written by train (bytes: each token's text followed by a NUL). *vocab is
 * one malloc'd block (free(*vocab) frees all). Returns the count, or -1 + error. */
int lz_text_vocab_read(const char *path, char ***vocab);

#endif
