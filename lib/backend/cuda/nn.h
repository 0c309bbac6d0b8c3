/* Launchers of nn.cu: row kernels (softmax, log-softmax, layer norm, RMS norm) and the norms'
 * backward (NORM_GRAD). Plain C: device pointers, int64 sizes, the stream as void *. Each
 * launches on the stream and returns without waiting; the caller checks with cu_done. */
#ifndef LZ_CUDA_NN_H
#define LZ_CUDA_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The row operations of cuk_nn_rows. */
enum { CUK_SOFTMAX = 0, CUK_LOG_SOFTMAX = 1, CUK_LAYER_NORM = 2, CUK_RMS_NORM = 3 };

/* Where each row starts: row r (0 <= r < rows) is decomposed row-major over size[0..nd)
 * (size[nd - 1] innermost) into an index i, and starts at sum i[d] * in_st[d] elements
 * from x, sum i[d] * out_st[d] from y. */
typedef struct {
    int nd;
    int64_t size[8], in_st[8], out_st[8];
} cuk_rowmap;

/* y[row, k] = op(x[row, :])[k] for every row of map (rows of them) and k < n; element k of
 * a row is at k * sx from its start in x, k * sy in y. w, b (norms only, may be NULL):
 * contiguous float32 [n]. eps: the norms' epsilon. sms: the device's multiprocessor count.
 * x and y may be the same memory (same layout). rows, n > 0. */
void cuk_nn_rows(int op, const float *x, float *y, const cuk_rowmap *map, int64_t rows,
                 int64_t n, int64_t sx, int64_t sy, const float *w, const float *b,
                 double eps, int sms, void *stream);

/* NORM_GRAD over x, ct [rows, n] contiguous float32 (w: [n] or NULL): out [rows + 2, n]
 * receives dx, then d weight and d bias (zero rows where has_w / has_b is 0). tpr: threads
 * per row (32, 256 or 1024); rows are processed in nchunks chunks of ch rows, each chunk's
 * column sums going to part[chunk * 2n ..] (nchunks * 2 * n floats of scratch), summed in a
 * fixed order by a second kernel: deterministic. n > 0; rows may be 0 (one kernel then). */
void cuk_norm_grad(const float *x, const float *ct, const float *w, float *out, float *part,
                   int64_t rows, int64_t n, int64_t ch, int64_t nchunks, int tpr, double eps,
                   int layer, int has_w, int has_b, int sms, void *stream);

#ifdef __cplusplus
}
#endif

#endif
