/* The primitive list: one line per primitive, read by X-macros.
 *
 * X(ENUM, "name", KIND, FLAGS)
 *   KIND   EW      elementwise: the fused tile engine runs it (backend/cpu/ew_ops.c)
 *          REDUCE  reduction over axes; may close a fused elementwise group
 *          VIEW    no computation: the output shares its input's buffer
 *          KERNEL  its own kernel in the backend table
 *   FLAGS  D       differentiable (autograd must give it a vjp rule and a gradient test)
 *          0       not differentiable (integer results, comparisons, indices)
 *
 * Where each primitive's parts live: the constructor (argument checks, shape and dtype
 * rule) in lib/ops/<family>.c, the kernel in lib/backend/cpu/<family>.c, the vjp rule in
 * lib/autograd/. Params: each constructor documents which lz_params slots it uses. */
#ifndef LZ_PRIMS_H
#define LZ_PRIMS_H

#define LZ_PRIM_LIST(X)                                   \
    /* elementwise unary */                               \
    X(NEG, "neg", EW, D) X(ABS, "abs", EW, D)             \
    X(SIGN, "sign", EW, D) X(EXP, "exp", EW, D)           \
    X(LOG, "log", EW, D) X(LOG1P, "log1p", EW, D)         \
    X(EXPM1, "expm1", EW, D) X(SQRT, "sqrt", EW, D)       \
    X(RSQRT, "rsqrt", EW, D) X(SQUARE, "square", EW, D)   \
    X(SIN, "sin", EW, D) X(COS, "cos", EW, D)             \
    X(TANH, "tanh", EW, D) X(SIGMOID, "sigmoid", EW, D)   \
    X(RELU, "relu", EW, D) X(GELU, "gelu", EW, D)         \
    X(GELU_TANH, "gelu_tanh", EW, D) X(SILU, "silu", EW, D) \
    X(SOFTPLUS, "softplus", EW, D) X(ERF, "erf", EW, D)   \
    X(FLOOR, "floor", EW, D) X(CEIL, "ceil", EW, D)       \
    X(ROUND, "round", EW, D) X(AFFINE, "affine", EW, D)   \
    X(LOGICAL_NOT, "logical_not", EW, 0)                  \
    X(ISNAN, "isnan", EW, 0) X(ISFINITE, "isfinite", EW, 0) \
    X(COPY, "copy", EW, D) X(CAST, "cast", EW, D)         \
    /* elementwise binary and ternary */                  \
    X(ADD, "add", EW, D) X(SUB, "sub", EW, D)             \
    X(MUL, "mul", EW, D) X(DIV, "div", EW, D)             \
    X(POW, "pow", EW, D) X(MAXIMUM, "maximum", EW, D)     \
    X(MINIMUM, "minimum", EW, D) X(AXPBY, "axpby", EW, D) \
    X(GELU_GRAD, "gelu_grad", EW, D)                      \
    X(EQ, "equal", EW, 0) X(NE, "not_equal", EW, 0)       \
    X(LT, "less", EW, 0) X(LE, "less_equal", EW, 0)       \
    X(GT, "greater", EW, 0) X(GE, "greater_equal", EW, 0) \
    X(LOGICAL_AND, "logical_and", EW, 0)                  \
    X(LOGICAL_OR, "logical_or", EW, 0)                    \
    X(WHERE, "where", EW, D)                              \
    /* reductions */                                      \
    X(SUM, "sum", REDUCE, D) X(PROD, "prod", REDUCE, D)   \
    X(MAX, "max", REDUCE, D) X(MIN, "min", REDUCE, D)     \
    X(ARGMAX, "argmax", KERNEL, 0)                        \
    X(ARGMIN, "argmin", KERNEL, 0)                        \
    /* views */                                           \
    X(VIEW, "view", VIEW, D)                              \
    /* kernels */                                         \
    X(MATMUL, "matmul", KERNEL, D)                        \
    X(SOFTMAX, "softmax", KERNEL, D)                      \
    X(LOG_SOFTMAX, "log_softmax", KERNEL, D)              \
    X(LAYER_NORM, "layer_norm", KERNEL, D)                \
    X(RMS_NORM, "rms_norm", KERNEL, D)                    \
    X(NORM_GRAD, "norm_grad", KERNEL, D)                  \
    X(ATTENTION, "attention", KERNEL, D)                  \
    X(ATTENTION_QKV, "attention_qkv", KERNEL, D)          \
    X(ATTENTION_QKV_GRAD, "attention_qkv_grad", KERNEL, D) \
    X(CONV, "conv", KERNEL, D)                            \
    X(POOL_MAX, "max_pool", KERNEL, D)                    \
    X(POOL_AVG, "avg_pool", KERNEL, D)                    \
    X(GATHER, "take", KERNEL, D)                          \
    X(TAKE_ALONG, "take_along_axis", KERNEL, D)           \
    X(SCATTER_ADD, "scatter_add", KERNEL, D)              \
    X(CONCAT, "concatenate", KERNEL, D)                   \
    X(PAD, "pad", KERNEL, D)                              \
    X(SORT, "sort", KERNEL, D)                            \
    X(ARGSORT, "argsort", KERNEL, 0)                      \
    X(CUMSUM, "cumsum", KERNEL, D)                        \
    X(RANDOM_BITS, "random_bits", KERNEL, 0)

typedef enum {
#define LZ_X(e, name, kind, flags) LZ_P_##e,
    LZ_PRIM_LIST(LZ_X)
#undef LZ_X
    LZ_NPRIMS,
    LZ_P_NONE = -1
} lz_prim_id;

#endif
