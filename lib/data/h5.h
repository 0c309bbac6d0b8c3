/* HDF5 helpers shared by lib/data (the reader, the writer, the converters) and lib/io's
 * checkpoints. Every function that fails leaves a message in lz_error() that names the file. */
#ifndef LZ_DATA_H5_H
#define LZ_DATA_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Switches HDF5's error printing off for the calling thread (the setting is per thread in
 * a thread-safe HDF5), so the library stays silent; called by every entry point. */
void h5_quiet(void);
/* The most specific message on HDF5's error stack ("" when none), then clears the stack. */
const char *h5_detail(char *buf, size_t n);
/* "uint8", "int32", "float64", "string", ... */
const char *h5_type_name(hid_t type, char *buf, size_t n);
/* File access properties for opening files and writing checkpoints: HDF5 1.8 objects (old
 * tools and h5py read them), no file locking, strong close. H5Pclose it. */
hid_t h5_fapl(void);
/* Opens an existing file read-only, telling apart a missing file, a folder, an empty file, a
 * file that is not HDF5 (and what it looks like), a corrupt and a truncated HDF5 file; `what`
 * ("dataset" or "checkpoint") words the messages. The file id or H5I_INVALID_HID. */
hid_t h5_open_file(const char *path, const char *what);
hid_t h5_open_read(const char *path);   /* h5_open_file(path, "dataset") */
/* The checks before any parsing: a missing file, a folder, an empty or unreadable file, each
 * with its own message naming the file ("checkpoint"/"dataset" words them). 0 or -1; *size
 * gets the file's size. */
int h5_precheck(const char *path, const char *what, int64_t *size);
/* The size of the file obj lives in (0 if unknown): a bound for what an attribute or an
 * uncompressed array of that file can hold, checked before allocating. */
int64_t h5_file_size(hid_t obj);

/* libhdf5 is not safe on corrupted files (it crashes, loops or allocates without bound inside
 * H5Fopen, H5Aread, H5Literate, ...). A file that cannot be verified is therefore parsed first
 * by fn(arg) in a forked child with a time limit (LZ_H5_TIMEOUT seconds overrides `seconds`)
 * and an address-space limit (its current size + mem_bytes); the caller then repeats the same
 * work in-process only if the child finished it. Returns 0 when fn returned 0 in the child;
 * else -1 with lz_error() set: fn's own message when it failed, or "libhdf5 crashed (SIGSEGV)
 * / did not finish within N s reading it" naming the file. `what` words those messages. */
int h5_probe(const char *path, const char *what, int (*fn)(void *), void *arg, double seconds,
             int64_t mem_bytes);
/* Held (shared) around HDF5 calls that may run on another thread than a probe's (the loader's
 * reads), so that fork never copies libhdf5 in the middle of a call. */
void h5_use_begin(void);
void h5_use_end(void);

/* Reads a string-list attribute of obj (variable or fixed length strings, or one string)
 * into one malloc'd block: *out[i] points inside it. Returns 0 when absent, else the count
 * (> 0), or -1. */
int h5_read_strings(const char *path, hid_t obj, const char *name, char ***out);
/* A numeric attribute as doubles (malloc'd). Same returns. */
int h5_read_doubles(const char *path, hid_t obj, const char *name, double **out);

#endif
