/* The thread pool: every thread runs every region exactly once, the caller is
   thread 0, work split with bn_split_range covers each index once, and the
   pool survives many short regions and regions after its workers slept. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define MAXT 16

typedef struct {
    int calls[MAXT];   /* calls per thread index in one region */
    int nth_seen[MAXT];
    int bad;           /* a call with an out-of-range ith */
} count_job;

static void count_fn(void *arg, int ith, int nth) {
    count_job *j = (count_job *)arg;
    if (ith < 0 || ith >= nth || ith >= MAXT) {
        j->bad++; /* only ever from one thread at a time if it happens: good enough to fail the test */
        return;
    }
    j->calls[ith]++;
    j->nth_seen[ith] = nth;
}

static int check_region(bn_pool *pool, int expect_n) {
    count_job job;
    int i, ok = 1;
    memset(&job, 0, sizeof job);
    bn_pool_run(pool, count_fn, &job);
    if (job.bad) ok = 0;
    for (i = 0; i < MAXT; i++) {
        int want = i < expect_n ? 1 : 0;
        if (job.calls[i] != want) ok = 0;
        if (want && job.nth_seen[i] != expect_n) ok = 0;
    }
    return ok;
}

static void test_null_pool_is_serial(void) {
    BNT_CHECK(bn_pool_size(NULL) == 1);
    BNT_CHECK(check_region(NULL, 1));
}

static void test_sizes(void) {
    int n;
    for (n = 1; n <= 4; n++) {
        bn_pool *p = bn_pool_new(n);
        BNT_CHECK(p != NULL);
        if (!p) continue;
#ifdef BITNET_NO_THREADS
        BNT_CHECK(bn_pool_size(p) == 1);
#else
        BNT_CHECKF(bn_pool_size(p) == n, "size %d for %d", bn_pool_size(p), n);
#endif
        BNT_CHECK(check_region(p, bn_pool_size(p)));
        bn_pool_free(p);
    }
}

static void test_default_is_core_count(void) {
    bn_pool *p = bn_pool_new(0);
    BNT_CHECK(p != NULL);
    BNT_CHECK(bn_cpu_count() >= 1);
    if (p) {
        BNT_CHECKF(bn_pool_size(p) == bn_cpu_count(), "%d vs %d", bn_pool_size(p), bn_cpu_count());
        bn_pool_free(p);
    }
    p = bn_pool_new(-3);
    BNT_CHECK(p != NULL && bn_pool_size(p) == bn_cpu_count());
    bn_pool_free(p);
}

static void test_free_unused_pool(void) {
    bn_pool_free(bn_pool_new(3));
    bn_pool_free(NULL);
    BNT_CHECK(1);
}

static void test_many_short_regions(void) {
    bn_pool *p = bn_pool_new(4);
    int i, ok = 1;
    for (i = 0; i < 3000 && p; i++)
        if (!check_region(p, bn_pool_size(p))) ok = 0;
    BNT_CHECK(ok);
    bn_pool_free(p);
}

static void test_region_after_workers_sleep(void) {
    bn_pool *p = bn_pool_new(3);
    int i, ok = 1;
    for (i = 0; i < 5 && p; i++) {
        double t0 = bn_time_s();
        while (bn_time_s() - t0 < 0.03) {
        } /* longer than the spin budget: the workers are asleep */
        if (!check_region(p, bn_pool_size(p))) ok = 0;
    }
    BNT_CHECK(ok);
    bn_pool_free(p);
}

static void test_split_range(void) {
    int n, nth, ith, ok = 1;
    for (n = 0; n < 40; n++)
        for (nth = 1; nth <= 7; nth++) {
            int next = 0, minsz = n, maxsz = 0;
            for (ith = 0; ith < nth; ith++) {
                int lo, hi;
                bn_split_range(n, ith, nth, &lo, &hi);
                if (lo != next || hi < lo) ok = 0;
                minsz = BN_MIN(minsz, hi - lo);
                maxsz = BN_MAX(maxsz, hi - lo);
                next = hi;
            }
            if (next != n || maxsz - minsz > 1) ok = 0;
        }
    BNT_CHECK(ok);
}

/* A real parallel computation: each thread squares its part of an array. */
typedef struct {
    const int *in;
    long long *out;
    int n;
} square_job;

static void square_fn(void *arg, int ith, int nth) {
    square_job *j = (square_job *)arg;
    int lo, hi, i;
    bn_split_range(j->n, ith, nth, &lo, &hi);
    for (i = lo; i < hi; i++) j->out[i] = (long long)j->in[i] * j->in[i];
}

static void test_parallel_work(void) {
    enum { N = 100003 };
    int *in = (int *)malloc(sizeof(int) * N);
    long long *out = (long long *)malloc(sizeof(long long) * N);
    bn_pool *p = bn_pool_new(3);
    square_job job;
    int i, round, ok = 1;
    for (i = 0; i < N; i++) in[i] = i * 7 - 5000;
    job.in = in;
    job.out = out;
    job.n = N;
    for (round = 0; round < 50; round++) {
        for (i = 0; i < N; i++) out[i] = -1;
        bn_pool_run(p, square_fn, &job);
        for (i = 0; i < N; i++)
            if (out[i] != (long long)in[i] * in[i]) ok = 0;
    }
    BNT_CHECK(ok);
    bn_pool_free(p);
    free(in);
    free(out);
}

/* bn__split: every unit of [0, n) goes to exactly one part, whichever threads
   take them (each from its own range, then from the others' backs). */
typedef struct {
    bn__split split;
    int *hits; /* [n]: how many parts covered each unit */
    int n;
    int bad;
} split_job;

static void split_fn(void *arg, int ith, int nth) {
    split_job *j = (split_job *)arg;
    int lo, hi, i;
    while (bn__split_next(&j->split, ith, nth, &lo, &hi)) {
        if (lo < 0 || hi > j->n || lo >= hi) {
            j->bad = 1;
            return;
        }
        for (i = lo; i < hi; i++) __atomic_fetch_add(&j->hits[i], 1, __ATOMIC_RELAXED);
        if (ith == 1) { /* a slow thread: the others take its range from the back */
            double t0 = bn_time_s();
            while (bn_time_s() - t0 < 2e-5) {
            }
        }
    }
}

static void test_split_takes_each_unit_once(void) {
    int nthreads, n, part, round, i, ok = 1;
    for (nthreads = 1; nthreads <= 5; nthreads++) {
        bn_pool *p = bn_pool_new(nthreads);
        for (n = 0; n <= 67 && p; n += 11)
            for (part = 1; part <= 9; part += 4)
                for (round = 0; round < 20; round++) {
                    split_job job;
                    memset(&job, 0, sizeof job);
                    job.n = n;
                    job.hits = (int *)calloc((size_t)n + 1, sizeof(int));
                    bn__split_init(&job.split, p, n, part);
                    bn_pool_run(p, split_fn, &job);
                    if (job.bad) ok = 0;
                    for (i = 0; i < n; i++)
                        if (job.hits[i] != 1) ok = 0;
                    free(job.hits);
                }
        bn_pool_free(p);
    }
    BNT_CHECK(ok);
}

/* The weights a worker prefetches while it waits (bn__pool_ahead) are the
   first it will read in the product they name: its own range of the
   product's split (bn__split_init over the matrices' groups of rows), from
   its start, in order, up to BN__AHEAD_BYTES. */
static void test_ahead_is_each_workers_first_rows(void) {
    static const int shapes[3][2] = {{40, 256}, {13, 512}, {2000, 1280}}; /* rows, cols */
    int nthreads, n_mats, i, ok = 1;
    for (nthreads = 2; nthreads <= 5; nthreads++) {
        bn_pool *p = bn_pool_new(nthreads);
        for (n_mats = 1; n_mats <= 3 && p; n_mats++) {
            bn_tmat mats[3];
            const bn_tmat *ms[3];
            bn__split split;
            int total = 0, ith;
            memset(mats, 0, sizeof mats);
            for (i = 0; i < n_mats; i++) {
                mats[i].rows = shapes[i][0];
                mats[i].cols = shapes[i][1];
                mats[i].layout = BN_TLAYOUT_I2;
                mats[i].data = (uint8_t *)(uintptr_t)((i + 1) * ((size_t)1 << 30)); /* never read */
                mats[i].nbytes = (size_t)mats[i].rows * bn__tmat_row_bytes(&mats[i]);
                ms[i] = &mats[i];
                total += bn__tmat_row_groups(&mats[i]);
            }
            bn__tmat_ahead(p, ms, n_mats, 1);
            bn__split_init(&split, p, total, 4); /* as bn__tmatmul_run splits one token's product */
            for (ith = 1; ith < bn_pool_size(p); ith++) {
                long long range = split.slots[ith].range;
                int lo = (int)(range & 0xffffffff), hi = (int)(range >> 32), g = 0, run = 0, mi;
                size_t want_total = 0, got_total = 0;
                bn__worker w;
                memset(&w, 0, sizeof w);
                w.pool = p;
                w.ith = ith;
                w.ahead_gen = -1;
                bn__worker_take_ahead(&w, p);
                for (mi = 0; mi < n_mats; g += bn__tmat_row_groups(ms[mi]), mi++) { /* the runs, in order */
                    int a = BN_MAX(lo - g, 0), b = BN_MIN(hi - g, bn__tmat_row_groups(ms[mi]));
                    size_t group = BN__RTILE * bn__tmat_row_bytes(ms[mi]), bytes;
                    size_t end = BN_MIN((size_t)b * group, (size_t)ms[mi]->rows * bn__tmat_row_bytes(ms[mi]));
                    if (a >= b || want_total >= BN__AHEAD_BYTES) continue;
                    bytes = BN_MIN(end - (size_t)a * group, BN__AHEAD_BYTES - want_total);
                    if (run >= w.runs || w.lo[run] != ms[mi]->data + (size_t)a * group || w.hi[run] != w.lo[run] + bytes)
                        ok = 0;
                    want_total += bytes;
                    run++;
                }
                for (i = 0; i < w.runs; i++) got_total += (size_t)(w.hi[i] - w.lo[i]);
                if (run != w.runs || got_total != want_total || want_total == 0) ok = 0;
            }
            /* products of more than one tile of tokens have no hint; nor has a cleared pool */
            bn__tmat_ahead(p, ms, n_mats, BN__TTILE + 1);
            if (p->ahead.n != 0) ok = 0;
            bn__tmat_ahead(p, ms, n_mats, 1);
            bn__pool_ahead(p, NULL);
            if (p->ahead.n != 0) ok = 0;
        }
        bn_pool_free(p);
    }
    BNT_CHECK(ok);
}

/* Products with the hint set give the same sums as without (the workers
   only prefetch), and regions with a hint pointing at memory that is never
   read run as before. */
static void test_ahead_changes_no_result(void) {
    enum { ROWS = 96, COLS = 512 };
    bn_pool *p = bn_pool_new(4);
    int8_t w[ROWS * COLS], x[COLS];
    int32_t plain[ROWS], hinted[ROWS];
    bn_tmat m, *mp = &m;
    const bn_tmat *ms[1];
    bn_error err;
    int i, round, ok = p != NULL;
    for (i = 0; i < ROWS * COLS; i++) w[i] = (int8_t)((i * 7 + i / 5) % 3 - 1);
    for (i = 0; i < COLS; i++) x[i] = (int8_t)((i * 37) % 255 - 127);
    if (ok && bn_tmat_pack(&m, w, ROWS, COLS, 1.0f, BN_TLAYOUT_I2, &err) != BN_OK) ok = 0;
    if (ok) {
        ms[0] = mp;
        bn_tmat_matmul_i32(&m, x, 1, plain, p, bn_kernel_detect());
        for (round = 0; round < 50; round++) {
            bn__tmat_ahead(p, ms, 1, 1);
            bn_tmat_matmul_i32(&m, x, 1, hinted, p, bn_kernel_detect());
            if (memcmp(plain, hinted, sizeof plain) != 0) ok = 0;
            BNT_CHECK(check_region(p, bn_pool_size(p)));
        }
        bn__pool_ahead(p, NULL);
        bn_tmat_free(&m);
    }
    bn_pool_free(p);
    BNT_CHECK(ok);
}

int main(void) {
    BNT_RUN(test_null_pool_is_serial);
    BNT_RUN(test_sizes);
    BNT_RUN(test_default_is_core_count);
    BNT_RUN(test_free_unused_pool);
    BNT_RUN(test_many_short_regions);
    BNT_RUN(test_region_after_workers_sleep);
    BNT_RUN(test_split_range);
    BNT_RUN(test_parallel_work);
    BNT_RUN(test_split_takes_each_unit_once);
    BNT_RUN(test_ahead_is_each_workers_first_rows);
    BNT_RUN(test_ahead_changes_no_result);
    return bnt_finish("test_threads");
}
