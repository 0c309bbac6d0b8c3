/* Shared by the files of lib/nn: error helpers and the few constructors that build modules
 * from existing arrays. Not for users. */
#ifndef LZ_NN_INTERNAL_H
#define LZ_NN_INTERNAL_H

#include "../core/internal.h"
#include "nn.h"

/* Sets the error "<kind> '<path>': <message>" (the root's path reads "(root)") and returns
 * NULL, like lz_fail. */
void *nn_fail(const lz_module *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* x's shape as "f32[2,3]" in a static per-thread ring of buffers (valid for a few calls). */
const char *nn_shape(const lz_array *x);

/* A linear module around existing arrays (retained): weight [out, in], bias [out] or NULL. */
lz_module *nn_linear_from(lz_array *weight, lz_array *bias);
bool nn_is_linear(const lz_module *m);

/* The parameter or buffer `name` of m itself (no dots), borrowed; NULL (no error) if none. */
lz_array *nn_param(const lz_module *m, const char *name);
/* The child `name` of m itself, borrowed; NULL (no error) if none. */
lz_module *nn_child(const lz_module *m, const char *name);
/* Its frozen flag (false for an unknown name). */
bool nn_frozen(const lz_module *m, const char *name);
void nn_set_frozen(lz_module *m, const char *name, bool frozen);
/* Replaces a buffer's value without checks (batch norm's running statistics). */
void nn_set_buffer(lz_module *m, const char *name, lz_array *value);

/* PyTorch's default for nn.Linear / nn.ConvNd: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
lz_array *nn_default_uniform(lz_key key, int ndim, const int64_t *shape, double fan_in);

#endif
