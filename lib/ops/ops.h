/* leibniz ops: lazy constructors. Each checks its arguments, infers the output shape and
 * dtype, and appends a node; none computes. Ownership as in core.h: a NEW reference (or
 * pooled); inputs borrowed; NULL + lz_error() on failure, naming the op and the shapes.
 *
 * Broadcasting follows NumPy: shapes align at the right, a dimension of 1 stretches.
 * Dtype promotion for binary ops: bool < uint8 < int32 < int64 < float16/bfloat16 < float32
 * (float16 with bfloat16 gives float32). Math functions of integers give float32.
 * Axes may be negative (counted from the end). */
#ifndef LZ_OPS_H
#define LZ_OPS_H

#include "../core/core.h"

/* ---- creation (lib/ops/creation.c) ---- */
lz_array *lz_full(int ndim, const int64_t *shape, double v, lz_dtype t);
lz_array *lz_zeros(int ndim, const int64_t *shape, lz_dtype t);
lz_array *lz_ones(int ndim, const int64_t *shape, lz_dtype t);
lz_array *lz_zeros_like(lz_array *a);
lz_array *lz_ones_like(lz_array *a);
lz_array *lz_full_like(lz_array *a, double v);
lz_array *lz_arange(double start, double stop, double step, lz_dtype t);
lz_array *lz_linspace(double start, double stop, int64_t n, lz_dtype t);
lz_array *lz_eye(int64_t n, int64_t m, int64_t k, lz_dtype t);   /* ones on diagonal k */

/* ---- elementwise unary (lib/ops/elementwise.c) ---- */
lz_array *lz_neg(lz_array *a);
lz_array *lz_abs(lz_array *a);
lz_array *lz_sign(lz_array *a);
lz_array *lz_exp(lz_array *a);
lz_array *lz_log(lz_array *a);
lz_array *lz_log1p(lz_array *a);
lz_array *lz_expm1(lz_array *a);
lz_array *lz_sqrt(lz_array *a);
lz_array *lz_rsqrt(lz_array *a);
lz_array *lz_square(lz_array *a);
lz_array *lz_sin(lz_array *a);
lz_array *lz_cos(lz_array *a);
lz_array *lz_tanh(lz_array *a);
lz_array *lz_sigmoid(lz_array *a);
lz_array *lz_relu(lz_array *a);
lz_array *lz_gelu(lz_array *a);           /* x * Phi(x), erf form */
lz_array *lz_gelu_tanh(lz_array *a);      /* tanh approximation */
lz_array *lz_silu(lz_array *a);
lz_array *lz_softplus(lz_array *a);
lz_array *lz_erf(lz_array *a);
lz_array *lz_floor(lz_array *a);
lz_array *lz_ceil(lz_array *a);
lz_array *lz_round(lz_array *a);          /* half to even, like NumPy */
lz_array *lz_logical_not(lz_array *a);    /* -> bool */
lz_array *lz_isnan(lz_array *a);          /* -> bool */
lz_array *lz_isfinite(lz_array *a);       /* -> bool */
lz_array *lz_astype(lz_array *a, lz_dtype t);
lz_array *lz_copy(lz_array *a);           /* a contiguous copy */
lz_array *lz_contiguous(lz_array *a);     /* a itself (new ref) when already contiguous */

/* ---- elementwise binary (lib/ops/elementwise.c) ---- */
lz_array *lz_add(lz_array *a, lz_array *b);
lz_array *lz_sub(lz_array *a, lz_array *b);
lz_array *lz_mul(lz_array *a, lz_array *b);
lz_array *lz_div(lz_array *a, lz_array *b);        /* true division: ints give float32 */
lz_array *lz_pow(lz_array *a, lz_array *b);
lz_array *lz_maximum(lz_array *a, lz_array *b);    /* NaN propagates */
lz_array *lz_minimum(lz_array *a, lz_array *b);
lz_array *lz_equal(lz_array *a, lz_array *b);      /* comparisons -> bool */
lz_array *lz_not_equal(lz_array *a, lz_array *b);
lz_array *lz_less(lz_array *a, lz_array *b);
lz_array *lz_less_equal(lz_array *a, lz_array *b);
lz_array *lz_greater(lz_array *a, lz_array *b);
lz_array *lz_greater_equal(lz_array *a, lz_array *b);
lz_array *lz_logical_and(lz_array *a, lz_array *b);
lz_array *lz_logical_or(lz_array *a, lz_array *b);
lz_array *lz_where(lz_array *cond, lz_array *a, lz_array *b);
/* With a scalar on the right, typed like a (a float scalar on an int array gives float32). */
lz_array *lz_add_scalar(lz_array *a, double s);
lz_array *lz_mul_scalar(lz_array *a, double s);
lz_array *lz_pow_scalar(lz_array *a, double s);
/* a x + b and a x + b y (y broadcast with x) in one elementwise op each: the running
 * averages, decays and steps of the optimizers. Float results (ints give float32); a and b
 * are rounded to float32, each product is rounded, then the sum (no fused multiply-add), so
 * a float32 result is bit for bit lz_add(lz_mul_scalar(x, a), lz_mul_scalar(y, b)). */
lz_array *lz_affine(lz_array *x, double a, double b);
lz_array *lz_axpby(double a, lz_array *x, double b, lz_array *y);

/* ---- views and shape (lib/ops/shape.c): no copy unless the layout forbids it ---- */
lz_array *lz_reshape(lz_array *a, int ndim, const int64_t *shape); /* one dim may be -1 */
lz_array *lz_flatten(lz_array *a, int start_axis, int end_axis);
lz_array *lz_transpose(lz_array *a);                              /* reverses the axes */
lz_array *lz_permute(lz_array *a, const int *axes);
lz_array *lz_swapaxes(lz_array *a, int axis1, int axis2);
lz_array *lz_expand_dims(lz_array *a, int axis);
lz_array *lz_squeeze(lz_array *a, int axis);                      /* that axis must be 1 */
lz_array *lz_squeeze_all(lz_array *a);
lz_array *lz_broadcast_to(lz_array *a, int ndim, const int64_t *shape);
/* Python-style slice on each axis: start/stop clamp, step != 0 (negative walks backwards).
 * Pass NULL for start/stop/step to take the defaults on every axis. */
lz_array *lz_slice(lz_array *a, const int64_t *start, const int64_t *stop, const int64_t *step);
lz_array *lz_slice_axis(lz_array *a, int axis, int64_t start, int64_t stop, int64_t step);
lz_array *lz_flip(lz_array *a, int axis);

/* ---- reductions (lib/ops/reduce.c): axes NULL/naxes 0 = all axes ---- */
lz_array *lz_sum(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_mean(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_max(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_min(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_prod(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_var(lz_array *a, const int *axes, int naxes, int keepdims, int ddof);
lz_array *lz_logsumexp(lz_array *a, const int *axes, int naxes, int keepdims);
lz_array *lz_argmax(lz_array *a, int axis, int keepdims);         /* -> int64 */
lz_array *lz_argmin(lz_array *a, int axis, int keepdims);

/* ---- linear algebra (lib/ops/linalg.c) ---- */
/* [..., m, k] @ [..., k, n] with batch broadcasting; 1-d operands as in NumPy. */
lz_array *lz_matmul(lz_array *a, lz_array *b);

/* ---- neural-network kernels (lib/ops/nn.c) ---- */
lz_array *lz_softmax(lz_array *a, int axis);
lz_array *lz_log_softmax(lz_array *a, int axis);
/* Normalise over the last axis; weight/bias of shape [last] or NULL. */
lz_array *lz_layer_norm(lz_array *x, lz_array *weight, lz_array *bias, double eps);
lz_array *lz_rms_norm(lz_array *x, lz_array *weight, double eps);
/* The backward of lz_layer_norm (rms 0) / lz_rms_norm (rms 1) for a cotangent ct of x's
 * shape, in one kernel: [R + 2, N] (R = size(x) / N) holding dx as R rows, then the weight's
 * gradient row, then the bias's (zeros without weight / has_bias). For their vjp rule. */
lz_array *lz_norm_grad(lz_array *x, lz_array *weight, lz_array *ct, double eps, int rms,
                       int has_bias);
/* q [..., Tq, D], k and v [..., Tk, D] (batch dims broadcast); scale <= 0 means 1/sqrt(D);
 * causal masks key j > query i + (Tk - Tq). Returns [..., Tq, D]. */
lz_array *lz_attention(lz_array *q, lz_array *k, lz_array *v, double scale, int causal);
/* The same with each query row's log-sum-exp of the scaled, masked scores appended as a last
 * column: [..., Tq, Dv + 1] (-inf for a row that sees no key). For the vjp of attention. */
lz_array *lz_attention_lse(lz_array *q, lz_array *k, lz_array *v, double scale, int causal);
/* Self-attention on packed projections, as a fused qkv linear layer makes them: qkv
 * [..., T, 3 H D] holds q, k and v one after the other on the last axis, each with its H
 * heads of size D side by side. Returns [..., T, H D], the heads merged back (the layout
 * the output projection reads). Same as splitting the heads and calling lz_attention with
 * Tq = Tk, without the copies; its backward is one fused kernel that writes d qkv. */
lz_array *lz_attention_qkv(lz_array *qkv, int64_t heads, double scale, int causal);
/* The gradient of lz_attention_qkv w.r.t. qkv for a cotangent dout [..., T, H D]:
 * [..., T, 3 H D]. For its vjp rule. */
lz_array *lz_attention_qkv_grad(lz_array *qkv, lz_array *dout, int64_t heads, double scale,
                                int causal);

/* ---- convolution and pooling (lib/ops/conv.c); layout NCH / NCHW, weights [O, C/groups, ...] ---- */
lz_array *lz_conv1d(lz_array *x, lz_array *w, int stride, int padding, int dilation, int groups);
lz_array *lz_conv2d(lz_array *x, lz_array *w, const int stride[2], const int padding[2],
                    const int dilation[2], int groups);
lz_array *lz_max_pool2d(lz_array *x, const int kernel[2], const int stride[2], const int padding[2]);
lz_array *lz_avg_pool2d(lz_array *x, const int kernel[2], const int stride[2], const int padding[2]);
lz_array *lz_max_pool1d(lz_array *x, int kernel, int stride, int padding);
lz_array *lz_avg_pool1d(lz_array *x, int kernel, int stride, int padding);

/* ---- indexing and joining (lib/ops/index.c) ---- */
/* a.take(indices, axis): output shape = a.shape[:axis] + indices.shape + a.shape[axis+1:].
 * Indices are integer arrays; negative indices count from the end; out of range is an error
 * at eval time. */
lz_array *lz_take(lz_array *a, lz_array *indices, int axis);
/* indices have a's ndim and broadcast against a on every axis but `axis`. */
lz_array *lz_take_along_axis(lz_array *a, lz_array *indices, int axis);
/* out = a with updates added at indices along axis; repeated indices accumulate. Two forms:
 * take's (updates shaped like take(a, indices, axis): the embedding gradient, a [V,D],
 * indices [N], updates [N,D], axis 0) and take_along_axis's (indices and updates have a's
 * shape except along axis; indices may broadcast). updates are cast to a's dtype. */
lz_array *lz_scatter_add(lz_array *a, lz_array *indices, lz_array *updates, int axis);
/* [..., depth] of t: 1 where indices == position; indices outside [0, depth) give zeros. */
lz_array *lz_one_hot(lz_array *indices, int64_t depth, lz_dtype t);
lz_array *lz_concatenate(int n, lz_array *const *arrays, int axis);
lz_array *lz_stack(int n, lz_array *const *arrays, int axis);
/* Splits into `sections` equal parts along axis (views); out[] gets new references. */
int lz_split(lz_array *a, int sections, int axis, lz_array **out);
/* pads[2*i], pads[2*i+1]: before/after on axis i, constant value. */
lz_array *lz_pad(lz_array *a, const int64_t *pads, double value);
lz_array *lz_tile(lz_array *a, const int64_t *reps);              /* reps has a's ndim */
lz_array *lz_repeat(lz_array *a, int64_t repeats, int axis);

/* ---- sorting and scans (lib/ops/sort.c) ---- */
/* Ascending and stable; NaNs last; -0 and +0 are equal (keep their order). */
lz_array *lz_sort(lz_array *a, int axis);
lz_array *lz_argsort(lz_array *a, int axis);                      /* -> int64 */
/* The k largest along axis, descending (NaNs count as largest); ties: lower index first.
 * values and/or indices (either may be NULL) get new references; 0 or -1. */
int lz_topk(lz_array *a, int64_t k, int axis, lz_array **values, lz_array **indices);
/* Inclusive; reverse sums from the end. Floats keep their dtype (summed in double); integer
 * and bool inputs give int64. */
lz_array *lz_cumsum(lz_array *a, int axis, int reverse);

/* ---- random (lib/ops/random.c): counter-based (Philox 4x32-10), explicit keys ----
 * The same key and shape give the same numbers whatever the thread count or order of
 * evaluation. Keys are plain values; split them to get independent streams. */
typedef struct { uint64_t hi, lo; } lz_key;
lz_key    lz_key_new(uint64_t seed);                               /* {0, seed} */
/* out[0..n-1]: children independent of the parent's stream and of each other; out[k]
 * depends on (key, k) only. n <= 0 writes nothing. */
void      lz_key_split(lz_key key, int n, lz_key *out);
lz_key    lz_key_fold(lz_key key, uint64_t data);                  /* derive a key from data */
/* Raw stream words: int64 holding uint32 values in [0, 2^32); element i is word i of the key's
 * stream (layout in lib/ops/random.c). */
lz_array *lz_random_bits(lz_key key, int ndim, const int64_t *shape);
/* Float dtypes only. uniform: [lo, hi), hi never returned even after rounding to t.
 * truncated_normal: N(0, 1) restricted to [lo, hi], bounds in standard deviations (may be
 * infinite), like jax.random.truncated_normal. */
lz_array *lz_random_uniform(lz_key key, int ndim, const int64_t *shape, double lo, double hi, lz_dtype t);
lz_array *lz_random_normal(lz_key key, int ndim, const int64_t *shape, double mean, double std, lz_dtype t);
lz_array *lz_random_truncated_normal(lz_key key, int ndim, const int64_t *shape, double lo, double hi, lz_dtype t);
lz_array *lz_random_bernoulli(lz_key key, int ndim, const int64_t *shape, double p);     /* -> bool */
/* Integers in [lo, hi) of dtype t (uint8, int32, int64); the range must fit t. */
lz_array *lz_random_randint(lz_key key, int ndim, const int64_t *shape, int64_t lo, int64_t hi, lz_dtype t);
lz_array *lz_random_permutation(lz_key key, int64_t n);           /* -> int64 */

#endif
