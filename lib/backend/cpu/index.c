/* (placeholder until this kernel family lands) */
#include "cpu.h"

void cpu_register_index(void) {}
