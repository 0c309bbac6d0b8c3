/* Metric logs: JSON Lines, one flat object per logged step or evaluation, flushed as written
 * so a crash loses nothing already logged, e.g.
 *   {"kind":"train","step":100,"epoch":1,"loss":0.3421,"accuracy":0.912,"lr":0.001}
 * Non-finite values are written as null (JSON has no NaN). */
#ifndef LZ_METRICS_H
#define LZ_METRICS_H

#include <stdint.h>

typedef struct lz_metrics lz_metrics;

/* Opens (append = 1 keeps existing lines, for resumed runs) or creates the log. NULL + lz_error(). */
lz_metrics *lz_metrics_open(const char *path, int append);
/* Appends one record: "kind" and "step" first, then n numeric fields. 0 or -1 + lz_error(). */
int lz_metrics_log(lz_metrics *m, const char *kind, int64_t step, int n, const char *const *keys,
                   const double *values);
/* Closes the file; 0 or -1 if the final flush failed. NULL-safe. */
int lz_metrics_close(lz_metrics *m);

/* Reads the values of field `key` from the records of `kind` in a log written above, in file
 * order, with their steps: arrays malloc'd into *steps and *values (free both). Records
 * without the field are skipped; null reads as NaN. Returns the count, or -1 + lz_error()
 * naming the file and line of a malformed record. */
int64_t lz_metrics_read(const char *path, const char *kind, const char *key, int64_t **steps,
                        double **values);

#endif
