/* The GPU backend of a build without CUDA: same API, and it answers "no GPU". */
#include "../../core/internal.h"

const lz_gpu_backend *lz_cuda_start(void) {
    return lz_fail("leibniz was built without CUDA (make CUDA=1 where nvcc is)");
}
