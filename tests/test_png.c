/* PNG: write/read round trip, atomic writes, bad files, and the plots render. */
#include <unistd.h>
#include "testutil.h"
#include "io/image.h"

static char dir[] = "/tmp/lz_png_XXXXXX";

static void test_round_trip(void **state) {
    (void)state;
    char path[256];
    for (int ch = 1; ch <= 3; ch += 2) {
        lz_image img, back;
        assert_int_equal(lz_image_new(&img, 31, 17, ch), 0);
        for (int i = 0; i < 31 * 17 * ch; i++) img.pixels[i] = (uint8_t)(i * 37 + 11);
        snprintf(path, sizeof path, "%s/rt%d.png", dir, ch);
        assert_int_equal(lz_png_write(path, &img), 0);
        assert_int_equal(lz_png_read(path, &back), 0);
        assert_int_equal(back.width, 31);
        assert_int_equal(back.height, 17);
        assert_int_equal(back.channels, ch);
        assert_memory_equal(back.pixels, img.pixels, 31 * 17 * ch);
        lz_image_free(&img);
        lz_image_free(&back);
    }
    /* no temporary file is left behind */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s/rt1.png.tmp.%ld", dir, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_bad_files(void **state) {
    (void)state;
    char path[256];
    lz_image img;
    snprintf(path, sizeof path, "%s/missing.png", dir);
    assert_int_equal(lz_png_read(path, &img), -1);
    assert_non_null(strstr(lz_error(), "missing.png: cannot open"));
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a png file at all", f);
    fclose(f);
    assert_int_equal(lz_png_read(path, &img), -1);
    assert_non_null(strstr(lz_error(), "text.png: not a PNG file"));
    /* a truncated PNG */
    lz_image good;
    lz_image_new(&good, 64, 64, 3);
    for (int i = 0; i < 64 * 64 * 3; i++) good.pixels[i] = (uint8_t)((i * 2654435761u) >> 13);
    snprintf(path, sizeof path, "%s/trunc.png", dir);
    lz_png_write(path, &good);
    FILE *g = fopen(path, "rb");
    fseek(g, 0, SEEK_END);
    long size = ftell(g);
    fclose(g);
    assert_int_equal(truncate(path, size / 2), 0);
    assert_int_equal(lz_png_read(path, &img), -1);
    assert_non_null(strstr(lz_error(), "trunc.png: truncated or corrupt PNG"));
    snprintf(path, sizeof path, "/nonexistent_dir_lz/x.png");
    assert_int_equal(lz_png_write(path, &good), -1);
    assert_non_null(strstr(lz_error(), "cannot write"));
    lz_image_free(&good);
}

static int count_color(const lz_image *img, lz_rgb c) {
    int n = 0;
    for (int i = 0; i < img->width * img->height; i++) {
        const uint8_t *p = img->pixels + 3 * i;
        n += p[0] == c.r && p[1] == c.g && p[2] == c.b;
    }
    return n;
}

static void test_plots(void **state) {
    (void)state;
    double x[50], y[50], y2[50];
    for (int i = 0; i < 50; i++) { x[i] = i * 10; y[i] = exp(-i / 10.0); y2[i] = 0.5; }
    lz_rgb red = {220, 40, 40}, blue = {30, 90, 200};
    lz_series s[2] = {{"train loss", x, y, 50, red}, {"val loss", x, y2, 50, blue}};
    lz_image img;
    assert_int_equal(lz_plot_lines(&img, 480, 300, "loss", "step", 2, s), 0);
    assert_true(count_color(&img, red) > 100);     /* the curve was drawn */
    assert_true(count_color(&img, blue) > 100);
    char path[256];
    snprintf(path, sizeof path, "%s/curve.png", dir);
    assert_int_equal(lz_png_write(path, &img), 0);
    lz_image_free(&img);
    int64_t cm[9] = {50, 2, 0, 1, 40, 3, 0, 0, 45};
    const char *labels[3] = {"cat", "dog", "bird"};
    assert_int_equal(lz_plot_heatmap(&img, "confusion", 3, cm, labels), 0);
    assert_true(img.width > 100 && img.height > 100);
    lz_image_free(&img);
}

static void test_image_grid(void **state) {
    (void)state;
    uint8_t pix[5 * 4 * 6];
    for (int i = 0; i < (int)sizeof pix; i++) pix[i] = (uint8_t)(i * 11);
    const char *cap[5] = {"7 99%", "1 80%", "CAT", NULL, "9"};
    lz_rgb red = {200, 0, 0}, col[5] = {red, red, red, red, red};
    lz_image img;
    assert_int_equal(lz_plot_image_grid(&img, 5, 4, 6, 1, pix, 3, 2, cap, NULL, col), 0);
    assert_int_equal(img.width, 3 * 100);                 /* 3 columns of at least 100 px */
    assert_int_equal(img.height, 2 * (4 * 2 + 34));       /* 2 rows */
    /* image 0's top-left pixel, scaled 2x, sits centred in its cell: (100 - 12) / 2, row 4 */
    const uint8_t *p = img.pixels + ((size_t)4 * img.width + 44) * 3;
    assert_true(p[0] == pix[0] && p[1] == pix[0] && p[2] == pix[0]);
    const uint8_t *q = img.pixels + ((size_t)5 * img.width + 45) * 3;   /* still pixel (0,0) */
    assert_true(q[0] == pix[0]);
    assert_true(count_color(&img, red) > 20);             /* captions drawn */
    lz_image_free(&img);
    assert_int_equal(lz_plot_image_grid(&img, 0, 4, 6, 1, pix, 3, 2, NULL, NULL, NULL), -1);
    assert_non_null(strstr(lz_error(), "image grid: bad layout"));
}

static int setup(void **state) { (void)state; return mkdtemp(dir) ? 0 : -1; }
static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_plots),
        cmocka_unit_test(test_image_grid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
