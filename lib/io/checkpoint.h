/* Checkpoints: HDF5 files of named arrays in sections plus typed root attributes.
 *
 * The layer is generic: modules and optimizers decide what to save. A training checkpoint is
 *   /params/<dotted.name>   the parameters        (one dataset per array, names not nested)
 *   /optim/<dotted.name>    the optimizer state   (e.g. "blocks.3.attn.qkv.weight.m")
 *   any other section       e.g. /buffers for running statistics
 *   root attributes         step, epoch, RNG keys, data-loader position, the effective config
 *                           (YAML text), metrics so far (JSONL text), ...
 *   format = "leibniz-checkpoint", format_version = LZ_CKPT_FORMAT_VERSION (root attributes)
 *
 * Writing is atomic. lz_ckpt_create makes "<path>.tmp-<pid>-<n>" in the same folder; each put
 * writes its array there at once (so the caller may release it right away); lz_ckpt_commit
 * flushes, fsyncs the file, renames it over <path> and fsyncs the folder. A crash or kill at
 * any instant therefore leaves either the complete old checkpoint or the complete new one.
 * A killed writer can leave its temporary file behind: lz_ckpt_create removes temporary files
 * of the same checkpoint name whose writing process no longer exists.
 *
 * Any failure of a writer is sticky: later calls return -1 with the first message, and
 * lz_ckpt_commit removes the temporary file and leaves the old checkpoint untouched.
 *
 * Storage (readable by h5py and h5dump): datasets are contiguous, little-endian, uncompressed,
 * in the exact bytes of the array. float32/int32/int64/uint8 use the standard HDF5 types;
 * bool is uint8 (0/1); float16 is an IEEE half HDF5 float type (h5py reads it as float16);
 * bfloat16 is an HDF5 float type of 16 bits with 8 exponent and 7 mantissa bits (h5py
 * converts it to float32). HDF5 1.10 has no predefined half type (1.14.4 adds one with the
 * same IEEE layout), hence types of our own. Each dataset carries two attributes: "dtype"
 * (lz_dtype_name: "bool", "bfloat16", ...), which decides the dtype on loading, and "crc32c"
 * (CRC-32C of the stored bytes), which lz_ckpt_get verifies. Root integers are int64
 * scalars, floats float64 scalars, strings variable-length UTF-8 scalars (no size limit),
 * bytes a uint8 vector, RNG keys a uint64 [n,2] array of {hi, lo}.
 * Files from other tools load too: without "dtype", a dataset of uint8, int32, int64 (any
 * byte order) or a 16/32-bit float loads as that dtype; other types (float64, int16, ...)
 * are reported, not converted.
 *
 * Messages name the file: "runs/x/last.h5: truncated HDF5 file (...)". Not for concurrent
 * use of one handle from several threads; separate handles in separate threads are fine
 * (HDF5 serialises its calls when built thread-safe, as Debian's libhdf5 is). */
#ifndef LZ_CHECKPOINT_H
#define LZ_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "../core/core.h"
#include "../ops/ops.h"   /* lz_key */

#define LZ_CKPT_FORMAT_VERSION 1

typedef struct lz_ckpt_writer lz_ckpt_writer;
typedef struct lz_ckpt lz_ckpt;

/* ---- writing ---- */
/* Starts a checkpoint that will replace `path` at commit. Returns a writer (finish it with
 * lz_ckpt_commit or lz_ckpt_abort, which free it), or NULL + lz_error() (folder missing or
 * not writable, ...). */
lz_ckpt_writer *lz_ckpt_create(const char *path);
/* Evaluates `a` (borrowed, left as it is: a non-contiguous array is copied, not changed) and
 * writes it as section/name. Section and name: non-empty, no '/', not "." or "..". A name
 * already written in that section is an error. Returns 0 or -1. */
int lz_ckpt_put(lz_ckpt_writer *w, const char *section, const char *name, lz_array *a);
/* Root attributes. A key is non-empty, "format" and "format_version" are reserved, and each
 * key may be set once. Return 0 or -1. */
int lz_ckpt_set_int(lz_ckpt_writer *w, const char *key, int64_t v);
int lz_ckpt_set_float(lz_ckpt_writer *w, const char *key, double v);
int lz_ckpt_set_str(lz_ckpt_writer *w, const char *key, const char *s);    /* UTF-8 text */
int lz_ckpt_set_bytes(lz_ckpt_writer *w, const char *key, const void *p, size_t n);
int lz_ckpt_set_keys(lz_ckpt_writer *w, const char *key, int n, const lz_key *keys);
/* Makes the checkpoint durable and visible at `path` (see above) and frees w (NULL-safe:
 * returns -1 keeping the message of the lz_ckpt_create that failed). Returns 0, or -1 with
 * the old checkpoint untouched and no temporary file left. */
int lz_ckpt_commit(lz_ckpt_writer *w);
/* Discards the temporary file and frees w. NULL-safe. */
void lz_ckpt_abort(lz_ckpt_writer *w);

/* ---- reading ---- */
/* Opens a checkpoint, telling apart a missing file, a folder, an empty file, a file that is
 * not HDF5, a truncated HDF5 file, an HDF5 file that is not a checkpoint and a format version
 * this build does not read. Returns a handle (free with lz_ckpt_close) or NULL + lz_error(). */
lz_ckpt *lz_ckpt_open(const char *path);
void lz_ckpt_close(lz_ckpt *c);   /* NULL-safe */
const char *lz_ckpt_path(const lz_ckpt *c);
/* The array names of a section, in the order they were written (*n of them; a section that
 * does not exist has none). Owned by c, valid until lz_ckpt_close. NULL + error on failure. */
const char *const *lz_ckpt_names(lz_ckpt *c, const char *section, int64_t *n);
/* dtype and shape (shape: LZ_MAX_DIMS room) of section/name without reading the data.
 * Returns 0, or -1 with an error ("... has no params/fc.weight"). */
int lz_ckpt_info(lz_ckpt *c, const char *section, const char *name, lz_dtype *dtype,
                 int *ndim, int64_t *shape);
/* Reads section/name into a new contiguous array (read straight into its buffer) and checks
 * its CRC. Returns a NEW reference (or pooled, as every op), or NULL + error. */
lz_array *lz_ckpt_get(lz_ckpt *c, const char *section, const char *name);
/* Whether the root attribute exists (1/0). */
int lz_ckpt_has(lz_ckpt *c, const char *key);
/* Root attributes; a missing key or a value of another type is an error naming both.
 * get_float also accepts an integer. Returned pointers are owned by c (valid until close). */
int lz_ckpt_get_int(lz_ckpt *c, const char *key, int64_t *out);
int lz_ckpt_get_float(lz_ckpt *c, const char *key, double *out);
const char *lz_ckpt_get_str(lz_ckpt *c, const char *key);
const void *lz_ckpt_get_bytes(lz_ckpt *c, const char *key, size_t *n);
/* Reads the keys stored under `key` into out (room for max). Returns their count (an error
 * if more than max), or -1. */
int lz_ckpt_get_keys(lz_ckpt *c, const char *key, lz_key *out, int max);

/* Compares a section with what a model expects: n names and, if `like` is not NULL, arrays
 * giving the expected dtype and shape of each (never evaluated; NULL entries check the name
 * only). allow_missing / allow_unexpected: NULL-terminated lists of fnmatch(3) patterns
 * ("head.*") for names that may be absent from the checkpoint / present only in it; either
 * list may be NULL. Returns 0, or -1 with ONE message that counts and lists every problem:
 *   "runs/x/best.h5: params: 2 missing (head.weight, head.bias), 1 unexpected (fc.weight),
 *    1 shape mismatch (conv1.weight: checkpoint float32[32,1,3,3], model float32[16,1,3,3])"
 * (also "dtype mismatch"). lz_error() holds at most 1 KiB, so long lists are cut there with
 * "+N more"; if report is not NULL, *report receives the same line uncut (malloc'd, the
 * caller frees it) when the check fails, NULL when it passes. */
int lz_ckpt_check(lz_ckpt *c, const char *section, int n, const char *const *names,
                  lz_array *const *like, const char *const *allow_missing,
                  const char *const *allow_unexpected, char **report);

#endif
