/* (placeholder until this kernel family lands) */
#include "cpu.h"

void cpu_register_reduce(void) {}

int cpu_reduce(const lz_fused *g) {
    (void)g;
    lz_fail("reductions are not implemented yet");
    return -1;
}
