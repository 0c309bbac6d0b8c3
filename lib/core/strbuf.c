/* The growing string of strbuf.h. */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(lz_strbuf *b, size_t more) {
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? 2 * b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) { b->oom = true; return false; }
    b->s = s;
    b->cap = cap;
    return true;
}

void lz_strbuf_add(lz_strbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void lz_strbuf_printf(lz_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (w < 0) { b->oom = true; return; }
    if (!reserve(b, (size_t)w)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)w + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)w;
}

char *lz_strbuf_take(lz_strbuf *b) {
    char *s = b->oom ? NULL : b->s ? b->s : calloc(1, 1);
    if (b->oom) free(b->s);
    *b = (lz_strbuf){0};
    return s;
}
