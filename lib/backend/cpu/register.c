/* Fills the primitive table's CPU kernels: each kernel family registers its own. */
#include "cpu.h"

void cpu_register_reduce(void);
void cpu_register_linalg(void);
void cpu_register_nn(void);
void cpu_register_conv(void);
void cpu_register_index(void);
void cpu_register_sort(void);
void cpu_register_random(void);

void lz_cpu_register(void) {
    cpu_register_reduce();
    cpu_register_linalg();
    cpu_register_nn();
    cpu_register_conv();
    cpu_register_index();
    cpu_register_sort();
    cpu_register_random();
    lz_cpu_backend.set_threads(0);
}
