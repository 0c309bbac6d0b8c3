/* Shared by the bench programs: a monotonic clock in seconds. Each program prints its figures
 * as lines "BENCH <name> <value> <unit>". */
#ifndef LZ_BENCH_H
#define LZ_BENCH_H

#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
