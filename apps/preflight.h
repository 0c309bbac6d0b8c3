/* A check that runs before any library's start-up code (the executable's .preinit_array
 * comes first): OpenBLAS reserves a 128 MiB buffer per thread when it loads and, refused,
 * retries for ever, so a program under a small address-space limit (ulimit -v) would spin
 * at 100% CPU before main. Here it stops with a message instead (exit 1). */
#ifndef LZ_APP_PREFLIGHT_H
#define LZ_APP_PREFLIGHT_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void preflight_memory(int argc, char **argv, char **envp) {
    (void)argc; (void)envp;
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) || r.rlim_cur == RLIM_INFINITY) return;
    long threads = sysconf(_SC_NPROCESSORS_ONLN);   /* its buffers follow the cores (measured: */
    if (threads < 1) threads = 1;                    /* OPENBLAS_NUM_THREADS=1 does not help) */
    unsigned long long need = (128ull * (unsigned long long)threads + 64) << 20;
    if (r.rlim_cur >= need) return;
    const char *name = argv && argv[0] ? argv[0] : "leibniz";
    fprintf(stderr, "%s: the address-space limit (ulimit -v) is %llu MiB; OpenBLAS alone reserves "
            "128 MiB per core at start-up (%ld cores) and would wait for it for ever: allow at "
            "least %llu MiB\n", name, (unsigned long long)(r.rlim_cur >> 20), threads,
            need >> 20);
    _exit(1);
}
__attribute__((section(".preinit_array"), used))
static void (*const preflight_entry)(int, char **, char **) = preflight_memory;

#endif
