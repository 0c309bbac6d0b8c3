/* A growing string for the library's reports and tables (load reports, summaries, generated
 * docs). Internal to lib/. Start from `lz_strbuf b = {0};`; an allocation failure sets oom
 * and makes every later call a no-op, so callers check once at the end (lz_strbuf_take). */
#ifndef LZ_CORE_STRBUF_H
#define LZ_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;          /* NUL-terminated once anything was added; NULL before */
    size_t len, cap;
    bool oom;
} lz_strbuf;

void lz_strbuf_add(lz_strbuf *b, const char *s, size_t n);
void lz_strbuf_printf(lz_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The string (the caller frees it; "" when nothing was added), or NULL after a failed
 * allocation (the buffer is freed). b is empty afterwards. */
char *lz_strbuf_take(lz_strbuf *b);

#endif
