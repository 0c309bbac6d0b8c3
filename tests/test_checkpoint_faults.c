/* Checkpoint writes that fail: one clear message, the old checkpoint untouched, no temp
 * file left; and a fault-injection test that kills a writer at random moments. */
#include "ckpt_testutil.h"

/* ---- write failures: one clear message, the old checkpoint untouched, no temp file ---- */

/* Files of the test folder whose name starts with prefix. */
static int count_files(const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static int count_temps(const char *base) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp-", base);
    return count_files(prefix);
}


static void assert_unchanged(const char *path, const char *old, long size) {
    long n;
    char *now = slurp(path, &n);
    assert_int_equal(n, size);
    assert_memory_equal(now, old, (size_t)size);
    free(now);
}

#define INT_ERROR(expr, needle) do {                                                       \
        lz_error_clear();                                                                  \
        assert_int_equal((expr), -1);                                                      \
        if (!strstr(lz_error(), needle)) fail_msg("error \"%s\" lacks \"%s\"", lz_error(), needle); \
    } while (0)

/* Creating in an unwritable folder fails with errno's words (run as nobody when root). */
static void unwritable_folder(void) {
    char sub[256], path[300];
    path_in(sub, sizeof sub, "ro");
    mkdir(sub, 0755);
    chmod(sub, 0555);
    snprintf(path, sizeof path, "%s/last.h5", sub);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(3);
        lz_ckpt_writer *w = lz_ckpt_create(path);
        _exit(!w && strstr(lz_error(), "last.h5: cannot write checkpoint in") &&
              strstr(lz_error(), "Permission denied") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    chmod(sub, 0755);
}

/* In a child limited to small files: writing fails, the old checkpoint stays. */
static void file_too_large(const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {1 << 20, 1 << 20};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        lz_ckpt_writer *w = lz_ckpt_create(path);
        if (!w) _exit(2);
        lz_ckpt_put(w, "params", "big", lz_zeros(1, (int64_t[]){1 << 20}, LZ_F32));
        int r = lz_ckpt_commit(w);
        _exit(r == -1 && strstr(lz_error(), "cannot write params/big") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_write_errors(void **state) {
    (void)state;
    char path[256];
    path_in(path, sizeof path, "last.h5");
    write_model(path);
    long size;
    char *old = slurp(path, &size);

    /* sticky failure: the first message wins, commit removes the temp file */
    lz_ckpt_writer *w = lz_ckpt_create(path);
    assert_non_null(w);
    lz_pool_push();
    assert_int_equal(lz_ckpt_put(w, "params", "a", lz_zeros(1, (int64_t[]){3}, LZ_F32)), 0);
    assert_int_equal(count_temps("last.h5"), 1);
    INT_ERROR(lz_ckpt_put(w, "params", "a", lz_ones(1, (int64_t[]){3}, LZ_F32)),
              "last.h5: params/a written twice");
    INT_ERROR(lz_ckpt_set_int(w, "step", 1), "params/a written twice");
    INT_ERROR(lz_ckpt_commit(w), "params/a written twice");
    lz_pool_pop();
    assert_unchanged(path, old, size);
    assert_int_equal(count_temps("last.h5"), 0);

    /* each kind of bad call */
    struct { int which; const char *msg; } cases[] = {
        {0, "array name \"a/b\" is not allowed"}, {1, "empty section name"},
        {2, "key \"format_version\" is reserved"}, {3, "key \"step\" set twice"},
        {4, "params/x: no array to write (matmul"}, {5, "params/big: out of memory"},
        {6, "NULL string"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        w = lz_ckpt_create(path);
        assert_non_null(w);
        lz_pool_push();
        lz_array *big = NULL;
        int r = 0;
        switch (cases[k].which) {
        case 0: r = lz_ckpt_put(w, "params", "a/b", lz_zeros(0, NULL, LZ_F32)); break;
        case 1: r = lz_ckpt_put(w, "", "a", lz_zeros(0, NULL, LZ_F32)); break;
        case 2: r = lz_ckpt_set_int(w, "format_version", 7); break;
        case 3: lz_ckpt_set_int(w, "step", 1); r = lz_ckpt_set_int(w, "step", 2); break;
        case 4:
            r = lz_ckpt_put(w, "params", "x", lz_matmul(lz_zeros(1, (int64_t[]){3}, LZ_F32),
                                                        lz_zeros(1, (int64_t[]){4}, LZ_F32)));
            break;
        case 5:   /* evaluating the array fails: over the memory limit */
            big = lz_ones(1, (int64_t[]){1 << 22}, LZ_F32);
            t_mem_set_limit(t_mem().active + 1024);   /* where the ops allocate */
            r = lz_ckpt_put(w, "params", "big", big);
            t_mem_set_limit(0);
            break;
        case 6: r = lz_ckpt_set_str(w, "s", NULL); break;
        }
        lz_pool_pop();
        assert_int_equal(r, -1);
        if (!strstr(lz_error(), cases[k].msg))
            fail_msg("case %d: \"%s\" lacks \"%s\"", cases[k].which, lz_error(), cases[k].msg);
        if (!strstr(lz_error(), "last.h5")) fail_msg("\"%s\" does not name the file", lz_error());
        if (k % 2) lz_ckpt_abort(w);
        else assert_int_equal(lz_ckpt_commit(w), -1);
        assert_unchanged(path, old, size);
        assert_int_equal(count_temps("last.h5"), 0);
    }

    /* the target became a folder before commit: rename fails */
    char dpath[256];
    path_in(dpath, sizeof dpath, "isdir.h5");
    w = lz_ckpt_create(dpath);
    assert_non_null(w);
    mkdir(dpath, 0755);
    INT_ERROR(lz_ckpt_commit(w), "isdir.h5: cannot move checkpoint into place");
    assert_int_equal(count_temps("isdir.h5"), 0);
    assert_null(lz_ckpt_create(dpath));
    assert_non_null(strstr(lz_error(), "isdir.h5: cannot write checkpoint: it is a folder"));
    rmdir(dpath);

    /* folders that do not exist or are not folders */
    assert_null(lz_ckpt_create("/nonexistent_lz_dir/x.h5"));
    assert_string_equal(lz_error(), "/nonexistent_lz_dir/x.h5: cannot write checkpoint: folder "
                                    "/nonexistent_lz_dir does not exist");
    char fpath[300];
    snprintf(fpath, sizeof fpath, "%s/x.h5", path);   /* inside a regular file */
    assert_null(lz_ckpt_create(fpath));
    assert_non_null(strstr(lz_error(), "Not a directory"));
    assert_null(lz_ckpt_create(""));
    unwritable_folder();
    file_too_large(path);
    assert_unchanged(path, old, size);
    assert_int_equal(count_temps("last.h5"), 0);
    /* NULL-safe */
    assert_int_equal(lz_ckpt_commit(NULL), -1);
    lz_ckpt_abort(NULL);
    lz_ckpt_close(NULL);
    free(old);
}

/* ---- fault injection: kill a writer at random moments ---- */

enum { NARR = 5, NSTATES = 3 };
static const int64_t fi_sizes[NARR] = {1 << 21, 1 << 20, 77777, 1 << 16, 3};
static const lz_dtype fi_types[NARR] = {LZ_F32, LZ_BF16, LZ_I64, LZ_U8, LZ_F16};
static lz_array *fi_arr[NSTATES][NARR];

/* Commit number k holds state A (k = 0), then B and C in turn, and step = k. */
static int state_of(int64_t k) { return k == 0 ? 0 : 1 + (int)(k % 2); }

static int fi_write(const char *path, int64_t k) {
    int s = state_of(k);
    lz_ckpt_writer *w = lz_ckpt_create(path);
    for (int i = 0; i < NARR; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.weight", i);
        lz_ckpt_put(w, i % 2 ? "optim" : "params", name, fi_arr[s][i]);
    }
    lz_ckpt_set_int(w, "step", k);
    lz_ckpt_set_str(w, "config", s == 0 ? "state: A" : s == 1 ? "state: B" : "state: C");
    return lz_ckpt_commit(w);
}

/* The commit number the checkpoint at path holds, checking that everything in it is exactly
 * that commit's; -1 (with a message) if it is not. */
static int64_t fi_commit(const char *path) {
    lz_ckpt *c = lz_ckpt_open(path);
    if (!c) return -1;
    int64_t k;
    if (lz_ckpt_get_int(c, "step", &k)) k = -1;
    int s = k >= 0 ? state_of(k) : -1;
    const char *cfg = s >= 0 ? lz_ckpt_get_str(c, "config") : NULL;
    if (s >= 0 && (!cfg || cfg[7] != "ABC"[s])) {
        lz_fail("config \"%s\" is not that of step %lld", cfg ? cfg : "", (long long)k);
        k = s = -1;
    }
    for (int i = 0; s >= 0 && i < NARR; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.weight", i);
        lz_array *a = lz_ckpt_get(c, i % 2 ? "optim" : "params", name);
        size_t nb = (size_t)fi_sizes[i] * lz_dtype_size(fi_types[i]);
        if (!a || lz_size(a) != fi_sizes[i] || lz_dtype_of(a) != fi_types[i] ||
            memcmp(lz_data(a), lz_data(fi_arr[s][i]), nb)) {
            if (a) lz_fail("%s is not that of step %lld", name, (long long)k);
            k = s = -1;
        }
        lz_release(a);
    }
    lz_ckpt_close(c);
    return k;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_fault_injection(void **state) {
    (void)state;
    for (int s = 0; s < NSTATES; s++)
        for (int i = 0; i < NARR; i++) {
            void *b = random_bytes(fi_types[i], fi_sizes[i]);
            fi_arr[s][i] = lz_from_data(b, 1, &fi_sizes[i], fi_types[i]);
            free(b);
        }
    char path[256], mpath[256];
    path_in(path, sizeof path, "fi.h5");
    assert_int_equal(fi_write(path, 0), 0);
    assert_int_equal(fi_commit(path), 0);
    /* how long one checkpoint takes here, to spread the kills over a few of them */
    double t0 = now_s();
    assert_int_equal(fi_write(path_in(mpath, sizeof mpath, "measure.h5"), 1), 0);
    double dt = now_s() - t0;
    unlink(mpath);
    int64_t prev = 0;
    int kept = 0, replaced = 0, mid_write = 0, trials = 30;
    for (int k = 0; k < trials; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {   /* commits prev+1, prev+2, ... until killed */
            for (int64_t n = prev + 1;; n++)
                if (fi_write(path, n)) _exit(1);
        }
        useconds_t delay = (useconds_t)(1e6 * dt * 4 * (double)(next() >> 11) / 9007199254740992.0);
        usleep(delay);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) fail_msg("trial %d: the writer exited by itself (%d)", k, status);
        char mine[64];
        snprintf(mine, sizeof mine, "fi.h5.tmp-%ld-", (long)pid);
        mid_write += count_files(mine) > 0;
        lz_error_clear();
        int64_t got = fi_commit(path);
        if (got < 0) fail_msg("trial %d (kill after %u us): no complete checkpoint: %s", k,
                              (unsigned)delay, lz_error());
        /* the previous one, or one the writer finished */
        if (got < prev) fail_msg("trial %d: went back from step %lld to %lld", k, (long long)prev, (long long)got);
        kept += got == prev;
        replaced += got > prev;
        prev = got;
    }
    /* a later commit removes what killed writers left behind */
    assert_int_equal(fi_write(path, prev + 1), 0);
    assert_int_equal(count_temps("fi.h5"), 0);
    print_message("fault injection: %d kills during %.1f ms writes: %d mid-write; %d left the "
                  "previous checkpoint, %d a newer one, all complete\n", trials, dt * 1e3,
                  mid_write, kept, replaced);
    /* the kills did interrupt writes, and writes did complete between them */
    assert_true(mid_write > 0);
    assert_true(replaced > 0);
    for (int s = 0; s < NSTATES; s++)
        for (int i = 0; i < NARR; i++) lz_release(fi_arr[s][i]);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, ckpt_setup, ckpt_teardown);
}
