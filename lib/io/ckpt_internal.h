/* Internal to the checkpoint files (ckpt_*.c): HDF5 types for our dtypes, CRC-32C, names,
 * and opening files for reading with a diagnosis. A private copy of what lib/data/h5.h
 * does for datasets, kept apart until the two are merged into one shared helper. */
#ifndef LZ_CKPT_INTERNAL_H
#define LZ_CKPT_INTERNAL_H

#include <hdf5.h>
#include <stdint.h>
#include "io/checkpoint.h"

#define CKPT_FORMAT "leibniz-checkpoint"

/* The checksum header: the HDF5 user block (which libhdf5 skips) of every checkpoint we
 * write. Little-endian:
 *   0  magic "\x89LZCKPT\n"      8  header version (u32) = 1   12 header size (u32) = 512
 *   16 HDF5 bytes that follow (u64)   24 their CRC-32C (u32)      28 CRC-32C of bytes 0..27
 *   32 a line of text for people who look; zeros to 512.
 * It is written last, after libhdf5 closed the file, and checked before libhdf5 opens it. */
#define CKPT_HEADER 512
#define CKPT_MAGIC "\x89LZCKPT\n"
/* Fills the header of the finished file at path; 0, or -1 with errno. */
int ckpt_seal(const char *path);
/* Checks the header of the file open as fd (size bytes): 1 verified, 0 no header (a file
 * from an older leibniz or another tool), -1 corrupt or truncated (lz_error says which). */
int ckpt_verify(const char *path, int fd, int64_t size);

/* Switches HDF5's error printing off for the calling thread; every entry point calls it. */
void ckpt_quiet(void);
/* Saves the most specific message of HDF5's error stack right after a failed call (later
 * calls clear the stack); returns -1. The first saved message since ckpt_quiet() stays. */
int ckpt_h5_save(void);
/* The saved message, else the current stack's ("unknown HDF5 error" when none); clears
 * both. */
const char *ckpt_h5_detail(char *buf, size_t n);
/* HDF5 type of a dtype in the file (little-endian) and in memory; caller closes. */
hid_t ckpt_file_type(lz_dtype t);
hid_t ckpt_mem_type(lz_dtype t);
/* The dtype of a dataset from its "dtype" attribute (dtype_attr, may be NULL) or else its
 * HDF5 type. Returns 0, or -1 with why in why[]. */
int ckpt_dtype_of(hid_t type, const char *dtype_attr, lz_dtype *out, char *why, size_t n);
/* CRC-32C (Castagnoli, as in iSCSI/ext4), continued from crc (0 to start). */
uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n);
/* 0 if `name` can be an HDF5 link name here, else -1 with an error naming `what`. */
int ckpt_check_name(const char *path, const char *what, const char *name);
/* "float32[2,3]" */
void ckpt_shape_str(lz_dtype t, int ndim, const int64_t *shape, char *buf, size_t n);

#endif
