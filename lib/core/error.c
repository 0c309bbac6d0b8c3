/* Thread-local error messages: the library never prints, it leaves one sentence here. */
#include <stdarg.h>
#include <stdio.h>
#include "core.h"

static _Thread_local char message[1024];

const char *lz_error(void) { return message; }
void lz_error_clear(void) { message[0] = 0; }

void *lz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return NULL;
}
