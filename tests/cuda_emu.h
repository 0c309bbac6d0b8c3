/* A small emulation of the CUDA execution model on the CPU, for tests/test_codegen.c: the
 * generated source of a fused kernel (lib/backend/cuda/codegen.c) is compiled with g++ and
 * this header (-include), and run block by block. Threads of a block are coroutines
 * (ucontext) that run until they reach __syncthreads or a warp shuffle; the scheduler
 * resumes the others until the whole block (or the warp) has arrived, as the hardware's
 * barriers would. Kernels without barriers run each thread to completion in turn. It tests
 * what the generator writes (index arithmetic, dtypes, reductions and their partials), not
 * the CUDA runtime. C++ only; everything lives in the compiled kernel's shared object. */
#include <math.h>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ucontext.h>

struct emu_dim { unsigned x, y, z; };

namespace emu {
enum { RUN, AT_BLOCK, AT_WARP, DONE };
struct thread {
    ucontext_t ctx;
    emu_dim tid;
    int state;
    long long slot;   /* a shuffle's value */
};
static emu_dim block_idx, block_dim, grid_dim;
static thread *threads, *cur;
static ucontext_t sched;
static const std::function<void()> *body;
static bool fibers;   /* the kernel has barriers: threads are coroutines */

static void entry() {
    (*body)();
    cur->state = DONE;
    swapcontext(&cur->ctx, &sched);
}

static void wait(int state) {
    cur->state = state;
    if (fibers) swapcontext(&cur->ctx, &sched);
    else abort();   /* a barrier in a kernel launched without fibers */
}

/* Runs the block's threads until all are done, releasing barriers as they fill. */
static void run_block(unsigned n) {
    for (;;) {
        bool any = false;
        for (unsigned t = 0; t < n; t++)
            if (threads[t].state == RUN) {
                cur = &threads[t];
                swapcontext(&sched, &cur->ctx);
                any = true;
            }
        if (any) continue;
        bool done = true, released = false;
        for (unsigned w = 0; w * 32 < n; w++) {   /* a warp whose live lanes all wait */
            bool all = true, some = false;
            for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++) {
                if (threads[t].state == DONE) continue;
                some = true;
                all &= threads[t].state == AT_WARP;
            }
            if (some && all) {
                for (unsigned t = w * 32; t < n && t < w * 32 + 32; t++)
                    if (threads[t].state == AT_WARP) threads[t].state = RUN;
                released = true;
            }
        }
        if (released) continue;
        bool all_block = true;
        for (unsigned t = 0; t < n; t++) {
            if (threads[t].state != DONE) done = false;
            if (threads[t].state != DONE && threads[t].state != AT_BLOCK) all_block = false;
        }
        if (done) return;
        if (!all_block) abort();   /* a deadlock: lanes waiting at different barriers */
        for (unsigned t = 0; t < n; t++)
            if (threads[t].state == AT_BLOCK) threads[t].state = RUN;
    }
}

static void launch(const std::function<void()> &f, unsigned gx, unsigned gy, unsigned bx, bool with_fibers) {
    enum { STACK = 1 << 16 };
    static char *stacks;
    static thread pool[1024];
    if (!stacks) stacks = (char *)malloc((size_t)1024 * STACK);
    threads = pool;
    body = &f;
    fibers = with_fibers;
    grid_dim = {gx, gy, 1};
    block_dim = {bx, 1, 1};
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
            block_idx = {x, y, 0};
            for (unsigned t = 0; t < bx; t++) {
                thread *th = &pool[t];
                th->tid = {t, 0, 0};
                th->state = RUN;
                if (!fibers) {   /* no barriers: each thread to its end */
                    cur = th;
                    f();
                    continue;
                }
                getcontext(&th->ctx);
                th->ctx.uc_stack.ss_sp = stacks + (size_t)t * STACK;
                th->ctx.uc_stack.ss_size = STACK;
                th->ctx.uc_link = nullptr;
                makecontext(&th->ctx, entry, 0);
            }
            if (fibers) run_block(bx);
        }
}
}  // namespace emu

#define threadIdx (emu::cur->tid)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

static inline void __syncthreads() { emu::wait(emu::AT_BLOCK); }

template <class T> static T __shfl_down_sync(unsigned mask, T v, int s) {
    (void)mask;
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    long long in = 0;
    memcpy(&in, &v, sizeof v);
    emu::cur->slot = in;
    emu::wait(emu::AT_WARP);   /* every lane has put its value */
    unsigned lane = emu::cur->tid.x & 31, base = emu::cur->tid.x - lane;
    T out = v;
    if (lane + (unsigned)s < 32 && base + lane + (unsigned)s < emu::block_dim.x)
        memcpy(&out, &emu::threads[base + lane + s].slot, sizeof out);
    emu::wait(emu::AT_WARP);   /* every lane has read before the next shuffle writes */
    return out;
}

static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
static inline float emu_h2f(unsigned short h) { _Float16 x; memcpy(&x, &h, 2); return (float)x; }
static inline unsigned short emu_f2h(float f) { _Float16 x = (_Float16)f; unsigned short h; memcpy(&h, &x, 2); return h; }
/* the float math functions come from <math.h> (global namespace); erfcx (CUDA has it, the
 * C library not) in double: e^(z^2) erfc(z), or its asymptotic series where erfc underflows */
static inline float erfcxf(float zf) {
    double z = zf;
    if (z < 25.0) return (float)(exp(z * z) * erfc(z));
    double r = 1.0 / (z * z);
    return (float)(0.5641895835477563 / z * (1.0 - 0.5 * r + 0.75 * r * r));
}
