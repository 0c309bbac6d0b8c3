/* Metric logs: JSON Lines written and read back, append for resumed runs, bad lines. */
#include "testutil.h"
#include <unistd.h>
#include "io/metrics.h"

static char path[] = "/tmp/lz_metrics_XXXXXX";

static void test_write_read(void **state) {
    (void)state;
    lz_metrics *m = lz_metrics_open(path, 0);
    assert_non_null(m);
    const char *keys[2] = {"loss", "accuracy"};
    for (int s = 1; s <= 3; s++) {
        double v[2] = {1.0 / s, 0.5 + 0.1 * s};
        assert_int_equal(lz_metrics_log(m, "train", s * 10, 2, keys, v), 0);
    }
    double nanv[1] = {NAN};
    const char *vk[1] = {"loss"};
    assert_int_equal(lz_metrics_log(m, "val", 30, 1, vk, nanv), 0);
    assert_int_equal(lz_metrics_close(m), 0);
    /* flushed as written: the file has 4 lines, the first exactly this */
    FILE *f = fopen(path, "r");
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "{\"kind\":\"train\",\"step\":10,\"loss\":1,\"accuracy\":0.6}\n");
    fclose(f);
    int64_t *steps;
    double *vals;
    assert_int_equal(lz_metrics_read(path, "train", "loss", &steps, &vals), 3);
    assert_true(steps[2] == 30 && fabs(vals[1] - 0.5) < 1e-9);
    free(steps); free(vals);
    assert_int_equal(lz_metrics_read(path, "val", "loss", &steps, &vals), 1);
    assert_true(isnan(vals[0]));
    free(steps); free(vals);
    /* append keeps what is there */
    m = lz_metrics_open(path, 1);
    double one[1] = {0.25};
    lz_metrics_log(m, "train", 40, 1, vk, one);
    lz_metrics_close(m);
    assert_int_equal(lz_metrics_read(path, "train", "loss", &steps, &vals), 4);
    free(steps); free(vals);
}

static void test_bad_input(void **state) {
    (void)state;
    int64_t *steps;
    double *vals;
    FILE *f = fopen(path, "w");
    fputs("{\"kind\":\"train\",\"step\":1,\"loss\":2}\n{\"kind\":\"train\",\"step\":2,\"loss\" 3}\n", f);
    fclose(f);
    assert_int_equal(lz_metrics_read(path, "train", "loss", &steps, &vals), -1);
    assert_non_null(strstr(lz_error(), ":2: malformed metric record"));
    assert_null(lz_metrics_open("/nonexistent_lz_dir/m.jsonl", 0));
    assert_non_null(strstr(lz_error(), "cannot open the metric log"));
    assert_int_equal(lz_metrics_read("/nonexistent_lz_dir/m.jsonl", "train", "loss", &steps, &vals), -1);
}

static int setup(void **state) { (void)state; int fd = mkstemp(path); return fd < 0 ? -1 : close(fd); }
static int teardown(void **state) { (void)state; return remove(path); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
