/* Checkpoints: bit-exact round trips of every dtype and layout, root attributes, the
 * mismatch report, version checks, bad files and corrupt data. Write failures and the
 * fault-injection test are in test_checkpoint_faults.c. */
#include "ckpt_testutil.h"
#include "io/ckpt_internal.h"   /* ckpt_seal: files edited here as another tool would */

/* ---- round trip: every dtype, contiguous and non-contiguous sources, 0-d and size 0 ---- */

typedef struct { char name[64]; lz_dtype t; int ndim; int64_t shape[3]; void *bytes; } want;

/* Element (i,j,k) of a contiguous [4,5,6] source of element size es. */
#define SRC(i, j, k) (src + (((i) * 5 + (j)) * 6 + (k)) * es)

static int make_views(lz_dtype t, lz_array **arrays, want *w) {
    size_t es = lz_dtype_size(t);
    const char *dn = lz_dtype_name(t);
    int64_t s3[3] = {4, 5, 6};
    unsigned char *src = random_bytes(t, 120);
    lz_array *base = lz_from_data(src, 3, s3, t);
    int n = 0;
    /* contiguous */
    arrays[n] = lz_retain(base);
    w[n] = (want){"", t, 3, {4, 5, 6}, malloc(120 * es)};
    memcpy(w[n].bytes, src, 120 * es);
    snprintf(w[n++].name, 64, "%s.contiguous", dn);
    /* transposed: out[i][j][k] = src[k][j][i] */
    arrays[n] = lz_transpose(base);
    w[n] = (want){"", t, 3, {6, 5, 4}, malloc(120 * es)};
    for (int i = 0, o = 0; i < 6; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 4; k++, o++) memcpy((char *)w[n].bytes + o * es, SRC(k, j, i), es);
    snprintf(w[n++].name, 64, "%s.transposed", dn);
    /* strided: out[i][j][k] = src[1+2i][1+2j][1+2k] */
    arrays[n] = lz_slice(base, (int64_t[]){1, 1, 1}, (int64_t[]){4, 5, 6}, (int64_t[]){2, 2, 2});
    w[n] = (want){"", t, 3, {2, 2, 3}, malloc(12 * es)};
    for (int i = 0, o = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++, o++)
                memcpy((char *)w[n].bytes + o * es, SRC(1 + 2 * i, 1 + 2 * j, 1 + 2 * k), es);
    snprintf(w[n++].name, 64, "%s.strided", dn);
    /* contiguous with an offset: rows 2..3 */
    arrays[n] = lz_slice_axis(base, 0, 2, 4, 1);
    w[n] = (want){"", t, 3, {2, 5, 6}, malloc(60 * es)};
    memcpy(w[n].bytes, SRC(2, 0, 0), 60 * es);
    snprintf(w[n++].name, 64, "%s.offset", dn);
    /* flipped (negative stride): out[i][j][k] = src[i][4-j][k] */
    arrays[n] = lz_flip(base, 1);
    w[n] = (want){"", t, 3, {4, 5, 6}, malloc(120 * es)};
    for (int i = 0, o = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 6; k++, o++) memcpy((char *)w[n].bytes + o * es, SRC(i, 4 - j, k), es);
    snprintf(w[n++].name, 64, "%s.flipped", dn);
    /* broadcast (zero strides): out[i][j][k] = src[0][0][j] */
    lz_array *row = lz_slice(base, (int64_t[]){0, 0, 0}, (int64_t[]){1, 1, 5}, NULL);
    lz_array *row2 = lz_reshape(row, 3, (int64_t[]){1, 5, 1});
    arrays[n] = lz_broadcast_to(row2, 3, (int64_t[]){3, 5, 2});
    lz_release(row);
    lz_release(row2);
    w[n] = (want){"", t, 3, {3, 5, 2}, malloc(30 * es)};
    for (int i = 0, o = 0; i < 3; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 2; k++, o++) memcpy((char *)w[n].bytes + o * es, SRC(0, 0, j), es);
    snprintf(w[n++].name, 64, "%s.broadcast", dn);
    /* 0-d, size 1, size 0 */
    arrays[n] = lz_from_data(src + 7 * es, 0, NULL, t);
    w[n] = (want){"", t, 0, {0}, malloc(es)};
    memcpy(w[n].bytes, src + 7 * es, es);
    snprintf(w[n++].name, 64, "%s.scalar", dn);
    arrays[n] = lz_from_data(src + 9 * es, 1, (int64_t[]){1}, t);
    w[n] = (want){"", t, 1, {1}, malloc(es)};
    memcpy(w[n].bytes, src + 9 * es, es);
    snprintf(w[n++].name, 64, "%s.one", dn);
    arrays[n] = lz_from_data(src, 2, (int64_t[]){0, 3}, t);
    w[n] = (want){"", t, 2, {0, 3}, malloc(1)};
    snprintf(w[n++].name, 64, "%s.empty", dn);
    arrays[n] = lz_zeros(3, (int64_t[]){4, 0, 2}, t);         /* pending, size 0 */
    w[n] = (want){"", t, 3, {4, 0, 2}, malloc(1)};
    snprintf(w[n++].name, 64, "%s.empty3", dn);
    lz_release(base);
    free(src);
    return n;
}

static void test_round_trip(void **state) {
    (void)state;
    char path[256];
    path_in(path, sizeof path, "rt.h5");
    lz_array *arrays[LZ_NDTYPES * 12];
    want w[LZ_NDTYPES * 12];
    int n = 0;
    for (int t = 0; t < LZ_NDTYPES; t++) n += make_views((lz_dtype)t, arrays + n, w + n);
    /* every bit pattern of the 16-bit floats, NaN payloads and subnormals included */
    uint16_t *all = malloc(65536 * 2);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int half = 0; half < 2; half++) {
        lz_dtype t = half ? LZ_BF16 : LZ_F16;
        arrays[n] = lz_from_data(all, 1, (int64_t[]){65536}, t);
        w[n] = (want){"", t, 1, {65536}, malloc(65536 * 2)};
        memcpy(w[n].bytes, all, 65536 * 2);
        snprintf(w[n++].name, 64, "all_bits.%s", lz_dtype_name(t));
    }
    free(all);
    uint32_t f32s[6] = {0x7fa00001u, 0xffc12345u, 0x80000000u, 0x00000001u, 0x7f800000u, 0xff7fffffu};
    arrays[n] = lz_from_data(f32s, 1, (int64_t[]){6}, LZ_F32);
    w[n] = (want){"special.float32", LZ_F32, 1, {6}, malloc(sizeof f32s)};
    memcpy(w[n++].bytes, f32s, sizeof f32s);
    int64_t i64s[3] = {INT64_MIN, INT64_MAX, -1};
    arrays[n] = lz_from_data(i64s, 1, (int64_t[]){3}, LZ_I64);
    w[n] = (want){"special.int64", LZ_I64, 1, {3}, malloc(sizeof i64s)};
    memcpy(w[n++].bytes, i64s, sizeof i64s);

    lz_ckpt_writer *wr = lz_ckpt_create(path);
    assert_non_null(wr);
    for (int i = 0; i < n; i++) {
        if (lz_ckpt_put(wr, "params", w[i].name, arrays[i])) fail_msg("%s", lz_error());
        /* the same arrays under a second section, names as dotted paths */
        char oname[160];
        snprintf(oname, sizeof oname, "blocks.%d.%.64s.m", i, w[i].name);
        if (lz_ckpt_put(wr, "optim", oname, arrays[i])) fail_msg("%s", lz_error());
    }
    /* the sources were left as they were: views stay views */
    assert_false(lz_is_contiguous(arrays[1]));
    assert_int_equal(lz_ckpt_commit(wr), 0);

    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) fail_msg("%s", lz_error());
    int64_t m;
    const char *const *names = lz_ckpt_names(c, "params", &m);
    assert_int_equal(m, n);
    for (int i = 0; i < n; i++) assert_string_equal(names[i], w[i].name);   /* write order */
    lz_ckpt_names(c, "nothing", &m);
    assert_int_equal(m, 0);
    for (int i = 0; i < n; i++) {
        lz_dtype t;
        int nd;
        int64_t shape[LZ_MAX_DIMS];
        assert_int_equal(lz_ckpt_info(c, "params", w[i].name, &t, &nd, shape), 0);
        assert_int_equal(t, w[i].t);
        assert_int_equal(nd, w[i].ndim);
        lz_array *a = lz_ckpt_get(c, "params", w[i].name);
        expect_bytes(w[i].name, a, w[i].t, w[i].ndim, w[i].shape, w[i].bytes);
        lz_release(a);
        char oname[160];
        snprintf(oname, sizeof oname, "blocks.%d.%.64s.m", i, w[i].name);
        lz_pool_push();   /* pooled results are released by the pool */
        expect_bytes(oname, lz_ckpt_get(c, "optim", oname), w[i].t, w[i].ndim, w[i].shape, w[i].bytes);
        lz_pool_pop();
    }
    t_assert_error(lz_ckpt_get(c, "params", "nope"), "rt.h5: no array params/nope in the checkpoint");
    t_assert_error(lz_ckpt_get(c, "nosection", "x"), "no array nosection/x");
    lz_memory_set_limit(lz_memory().active + 1024);   /* no room for the array read */
    t_assert_error(lz_ckpt_get(c, "params", "all_bits.float16"),
                   "rt.h5: params/all_bits.float16: out of memory");
    lz_memory_set_limit(0);
    lz_ckpt_close(c);
    for (int i = 0; i < n; i++) { lz_release(arrays[i]); free(w[i].bytes); }
}

/* ---- root attributes ---- */

static char *long_config(void) {
    const char *line = "model:  # modèle — 日本語のコメント 🚀 ünïcødé\n  layers: [64, 128, 256]\n";
    size_t ln = strlen(line), reps = 3000;
    char *s = malloc(ln * reps + 1);
    for (size_t i = 0; i < reps; i++) memcpy(s + i * ln, line, ln);
    s[ln * reps] = 0;
    return s;
}

static void test_attributes(void **state) {
    (void)state;
    char path[256];
    path_in(path, sizeof path, "attrs.h5");
    char *config = long_config();
    size_t nbytes = 200000;
    unsigned char *blob = random_bytes(LZ_U8, (int64_t)nbytes);
    blob[5] = 0;
    lz_key keys[3] = {{1, 2}, {UINT64_MAX, 0x0123456789abcdefull}, {0, 0}};
    double neg_zero = -0.0, tiny = 4.9e-324;

    lz_ckpt_writer *w = lz_ckpt_create(path);
    assert_non_null(w);
    assert_int_equal(lz_ckpt_set_int(w, "step", 1200), 0);
    assert_int_equal(lz_ckpt_set_int(w, "min", INT64_MIN), 0);
    assert_int_equal(lz_ckpt_set_float(w, "lr", 3e-4), 0);
    assert_int_equal(lz_ckpt_set_float(w, "neg_zero", neg_zero), 0);
    assert_int_equal(lz_ckpt_set_float(w, "tiny", tiny), 0);
    assert_int_equal(lz_ckpt_set_float(w, "nan", NAN), 0);
    assert_int_equal(lz_ckpt_set_str(w, "config", config), 0);
    assert_int_equal(lz_ckpt_set_str(w, "empty", ""), 0);
    assert_int_equal(lz_ckpt_set_bytes(w, "blob", blob, nbytes), 0);
    assert_int_equal(lz_ckpt_set_bytes(w, "noblob", NULL, 0), 0);
    assert_int_equal(lz_ckpt_set_keys(w, "rng", 3, keys), 0);
    assert_int_equal(lz_ckpt_set_keys(w, "nokeys", 0, NULL), 0);
    assert_int_equal(lz_ckpt_set_int(w, "loader.position", 37), 0);
    assert_int_equal(lz_ckpt_commit(w), 0);

    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) fail_msg("%s", lz_error());
    int64_t i;
    double f;
    assert_int_equal(lz_ckpt_get_int(c, "step", &i), 0);
    assert_int_equal(i, 1200);
    assert_int_equal(lz_ckpt_get_int(c, "min", &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(lz_ckpt_get_int(c, "loader.position", &i), 0);
    assert_int_equal(i, 37);
    assert_int_equal(lz_ckpt_get_float(c, "lr", &f), 0);
    assert_true(f == 3e-4);
    assert_int_equal(lz_ckpt_get_float(c, "neg_zero", &f), 0);
    assert_memory_equal(&f, &neg_zero, sizeof f);
    assert_int_equal(lz_ckpt_get_float(c, "tiny", &f), 0);
    assert_memory_equal(&f, &tiny, sizeof f);
    assert_int_equal(lz_ckpt_get_float(c, "nan", &f), 0);
    assert_true(isnan(f));
    assert_int_equal(lz_ckpt_get_float(c, "step", &f), 0);   /* an integer reads as a float */
    assert_true(f == 1200);
    const char *s = lz_ckpt_get_str(c, "config");
    assert_non_null(s);
    assert_string_equal(s, config);
    assert_string_equal(lz_ckpt_get_str(c, "empty"), "");
    size_t n = 0;
    const void *p = lz_ckpt_get_bytes(c, "blob", &n);
    assert_int_equal(n, nbytes);
    assert_memory_equal(p, blob, nbytes);
    assert_non_null(lz_ckpt_get_bytes(c, "noblob", &n));
    assert_int_equal(n, 0);
    lz_key back[4];
    assert_int_equal(lz_ckpt_get_keys(c, "rng", back, 4), 3);
    assert_memory_equal(back, keys, sizeof keys);
    assert_int_equal(lz_ckpt_get_keys(c, "nokeys", back, 4), 0);
    assert_true(lz_ckpt_has(c, "step"));
    assert_false(lz_ckpt_has(c, "epoch"));
    /* typed errors */
    assert_int_equal(lz_ckpt_get_int(c, "epoch", &i), -1);
    assert_non_null(strstr(lz_error(), "attrs.h5: no key \"epoch\" in the checkpoint"));
    t_assert_error(lz_ckpt_get_str(c, "epoch"), "attrs.h5: no key \"epoch\" in the checkpoint");
    t_assert_error(lz_ckpt_get_str(c, "step"), "key \"step\" is an integer, not a string");
    t_assert_error(lz_ckpt_get_bytes(c, "config", &n), "key \"config\" is a string, not bytes");
    assert_int_equal(lz_ckpt_get_int(c, "lr", &i), -1);
    assert_non_null(strstr(lz_error(), "key \"lr\" is a float, not an integer"));
    assert_int_equal(lz_ckpt_get_keys(c, "rng", back, 2), -1);
    assert_non_null(strstr(lz_error(), "holds 3 RNG keys, room for 2"));
    assert_int_equal(lz_ckpt_get_float(c, "config", &f), -1);
    assert_non_null(strstr(lz_error(), "is a string, not a float"));
    lz_ckpt_close(c);
    free(config);
    free(blob);
}

/* ---- the mismatch report ---- */


static void test_check_report(void **state) {
    (void)state;
    char path[256];
    write_model(path_in(path, sizeof path, "best.h5"));
    lz_ckpt *c = lz_ckpt_open(path);
    assert_non_null(c);
    lz_pool_push();
    const char *names[] = {"conv1.weight", "conv1.bias", "norm.scale", "head.weight", "head.bias"};
    lz_array *like[] = {
        lz_zeros(4, (int64_t[]){16, 1, 3, 3}, LZ_F32), lz_zeros(1, (int64_t[]){32}, LZ_F32),
        lz_zeros(1, (int64_t[]){4}, LZ_F32), lz_zeros(2, (int64_t[]){10, 8}, LZ_F32),
        lz_zeros(1, (int64_t[]){10}, LZ_F32)};
    char *report = NULL;
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s: params: 2 missing (head.weight, head.bias), 1 unexpected (fc.weight), "
             "1 shape mismatch (conv1.weight: checkpoint float32[32,1,3,3], model "
             "float32[16,1,3,3]), 1 dtype mismatch (norm.scale: checkpoint bfloat16[4], model "
             "float32[4])", path);
    assert_int_equal(lz_ckpt_check(c, "params", 5, names, like, NULL, NULL, &report), -1);
    assert_string_equal(lz_error(), expected);
    assert_non_null(report);
    assert_string_equal(report, expected);
    free(report);
    /* the model's arrays were only inspected, never evaluated */
    assert_false(lz_is_evaluated(like[0]));
    /* allowed patterns; names only (like NULL) */
    const char *const missing_ok[] = {"head.*", NULL};
    const char *const unexpected_ok[] = {"fc.*", "other", NULL};
    assert_int_equal(lz_ckpt_check(c, "params", 5, names, NULL, missing_ok, unexpected_ok, &report), 0);
    assert_null(report);
    assert_int_equal(lz_ckpt_check(c, "params", 5, names, like, missing_ok, unexpected_ok, NULL), -1);
    snprintf(expected, sizeof expected,
             "%s: params: 1 shape mismatch (conv1.weight: checkpoint float32[32,1,3,3], model "
             "float32[16,1,3,3]), 1 dtype mismatch (norm.scale: checkpoint bfloat16[4], model "
             "float32[4])", path);
    assert_string_equal(lz_error(), expected);
    /* a section that is not there: everything missing */
    assert_int_equal(lz_ckpt_check(c, "optim", 2, names, NULL, NULL, NULL, NULL), -1);
    assert_non_null(strstr(lz_error(), "best.h5: optim: 2 missing (conv1.weight, conv1.bias)"));
    /* hundreds of problems: the error line is cut with "+N more", the report is whole */
    enum { MANY = 400 };
    char **many = malloc(MANY * sizeof *many);
    for (int i = 0; i < MANY; i++) {
        many[i] = malloc(48);
        snprintf(many[i], 48, "blocks.%d.mlp.fc%d.weight", i / 2, i % 2);
    }
    assert_int_equal(lz_ckpt_check(c, "params", MANY, (const char *const *)many, NULL, NULL,
                                   NULL, &report), -1);
    assert_non_null(strstr(lz_error(), ": params: 400 missing (blocks.0.mlp.fc0.weight, "));
    assert_non_null(strstr(lz_error(), " more), 4 unexpected (conv1.weight, conv1.bias, "
                                       "fc.weight, norm.scale)"));
    assert_null(strchr(lz_error(), '\n'));
    assert_non_null(report);
    assert_non_null(strstr(report, "blocks.199.mlp.fc1.weight)"));
    assert_null(strstr(report, "more"));
    free(report);
    for (int i = 0; i < MANY; i++) free(many[i]);
    free(many);
    lz_pool_pop();
    lz_ckpt_close(c);
}

/* ---- versions and files that are not checkpoints ---- */

static void set_version(const char *path, int version) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_INT, &version) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    assert_int_equal(ckpt_seal(path), 0);   /* a new checksum header for the edited file */
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}



/* Asserts that opening fails with a single-line message containing needle. */
static void open_fails(const char *path, const char *needle) {
    lz_error_clear();
    lz_ckpt *c = lz_ckpt_open(path);
    if (c) { lz_ckpt_close(c); fail_msg("%s opened, expected: %s", path, needle); }
    if (!strstr(lz_error(), needle)) fail_msg("error \"%s\" lacks \"%s\"", lz_error(), needle);
    if (!strstr(lz_error(), path)) fail_msg("error \"%s\" does not name the file", lz_error());
    if (strchr(lz_error(), '\n')) fail_msg("error \"%s\" is not one line", lz_error());
}

static void test_versions_and_bad_files(void **state) {
    (void)state;
    char path[256], p2[256];
    write_model(path_in(path, sizeof path, "v.h5"));
    set_version(path, 2);
    open_fails(path, "checkpoint format version 2 is newer than this build reads (1)");
    set_version(path, 0);
    open_fails(path, "unknown checkpoint format version 0");
    set_version(path, 1);
    lz_ckpt *c = lz_ckpt_open(path);
    assert_non_null(c);
    lz_ckpt_close(c);
    /* datasets added by other tools: no dtype or CRC attributes */
    hid_t fw = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, (hsize_t[]){3}, NULL);
    double d64[3] = {1, 2, 3};
    int32_t i32[3] = {-7, 0, 7};
    hid_t ds = H5Dcreate2(fw, "params/extra.d64", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, d64);
    H5Dclose(ds);
    ds = H5Dcreate2(fw, "params/extra.i32", H5T_STD_I32BE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, i32);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(fw);
    /* edited by another tool: its checksum no longer holds */
    open_fails(path, "v.h5: checksum mismatch: the file is corrupt, or another tool changed it");
    assert_int_equal(ckpt_seal(path), 0);
    c = lz_ckpt_open(path);
    assert_non_null(c);
    t_assert_error(lz_ckpt_get(c, "params", "extra.d64"),
                   "v.h5: params/extra.d64: HDF5 type float64 is not a leibniz dtype");
    lz_array *e = lz_ckpt_get(c, "params", "extra.i32");   /* big-endian, converted */
    expect_bytes("extra.i32", e, LZ_I32, 1, (int64_t[]){3}, i32);
    lz_release(e);
    const char *const want_names[] = {"conv1.weight", "conv1.bias", "fc.weight", "norm.scale",
                                      "extra.d64", "extra.i32"};
    lz_pool_push();
    lz_array *like[6] = {lz_zeros(4, (int64_t[]){32, 1, 3, 3}, LZ_F32),
                         lz_zeros(1, (int64_t[]){32}, LZ_F32),
                         lz_zeros(2, (int64_t[]){10, 5}, LZ_F32),
                         lz_zeros(1, (int64_t[]){4}, LZ_BF16),
                         lz_zeros(1, (int64_t[]){3}, LZ_F32),
                         lz_zeros(1, (int64_t[]){3}, LZ_I32)};
    assert_int_equal(lz_ckpt_check(c, "params", 6, want_names, like, NULL, NULL, NULL), -1);
    assert_non_null(strstr(lz_error(), "v.h5: params: 1 unreadable (extra.d64)"));
    lz_pool_pop();
    lz_ckpt_close(c);
    /* an HDF5 file that is not a checkpoint */
    hid_t f = H5Fcreate(path_in(p2, sizeof p2, "plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    open_fails(p2, "an HDF5 file but not a leibniz checkpoint");
    open_fails(path_in(p2, sizeof p2, "missing.h5"), "cannot open checkpoint: No such file or directory");
    open_fails(dir, "is a folder, not a checkpoint file");
    write_file(path_in(p2, sizeof p2, "empty.h5"), "", 0);
    open_fails(p2, "empty file (0 bytes), not a checkpoint");
    const char *text = "step: 12\nthis is a YAML file, not a checkpoint\n";
    write_file(path_in(p2, sizeof p2, "text.h5"), text, strlen(text));
    open_fails(p2, "not an HDF5 file, so not a leibniz checkpoint");
    /* truncated: at half, and just the first bytes */
    long size;
    char *bytes = slurp(path, &size);
    write_file(path_in(p2, sizeof p2, "half.h5"), bytes, (size_t)size / 2);
    open_fails(p2, "truncated HDF5 file");
    write_file(path_in(p2, sizeof p2, "cut.h5"), bytes, (size_t)size - 1);
    open_fails(p2, "truncated HDF5 file");
    write_file(path_in(p2, sizeof p2, "head.h5"), bytes, 16);
    open_fails(p2, "truncated HDF5 file (16 bytes, less than its header)");
    free(bytes);
}

/* A flipped bit in an array's data is caught by its checksum. */
static void test_corrupt_data(void **state) {
    (void)state;
    char path[256];
    path_in(path, sizeof path, "corrupt.h5");
    lz_ckpt_writer *w = lz_ckpt_create(path);
    lz_pool_push();
    lz_ckpt_put(w, "params", "w", lz_arange(0, 1000, 1, LZ_F32));
    lz_pool_pop();
    assert_int_equal(lz_ckpt_commit(w), 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "params/w", H5P_DEFAULT);
    haddr_t off = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off + 2001), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off + 2001), 1);
    close(fd);
    /* the whole-file checksum refuses it before libhdf5 reads a byte ... */
    open_fails(path, "corrupt.h5: checksum mismatch: the file is corrupt");
    /* ... and read unverified, the array's own CRC catches it */
    setenv("LZ_CKPT_UNVERIFIED", "1", 1);
    lz_ckpt *c = lz_ckpt_open(path);
    unsetenv("LZ_CKPT_UNVERIFIED");
    assert_non_null(c);
    t_assert_error(lz_ckpt_get(c, "params", "w"), "corrupt.h5: params/w: checksum mismatch: the file is corrupt");
    lz_ckpt_close(c);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_check_report),
        cmocka_unit_test(test_versions_and_bad_files),
        cmocka_unit_test(test_corrupt_data),
    };
    return cmocka_run_group_tests(tests, ckpt_setup, ckpt_teardown);
}
