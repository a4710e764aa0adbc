/* bench.c: `bitnet bench` and `bitnet bench-batch`, the benchmarks.

   bench: one sequence's prompt and decode speed against this machine's memory bandwidth (a
   streaming read measured here with AVX-512 loads where the CPU has them, in turn with decode
   steps): the roofline of a decoder whose every step reads all the weights once; per thread
   count with --threads-sweep, and per stage of the forward pass with --profile.
   bench-batch: the total decode speed of B sequences at once through bn_batcher, beside the
   ceiling that the matrix kernels' in-cache rate sets.

   Benchmarks, not tests: the numbers depend on the machine and its load. docs/benchmarks.md
   has the figures per machine, each with its command. */
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE) for the bandwidth buffer */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h> /* Sleep */
#else
#include <time.h> /* nanosleep */
#include <sys/mman.h>
#include <sys/resource.h>
#endif

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define BENCH_MODEL "build/bitnet-2b4t-synth" /* bitnet bench's model when -m is not given */
#define BENCH_TOKENIZER "tests/fixtures/tokenizers/llama3" /* 2B4T's tokenizer, for the grammar benchmark */

/* n token ids from the library's PRNG (the benchmarks' prompts). */
static void bench_tokens(int32_t *tok, int n, int vocab, uint64_t *rng) {
    int i;
    for (i = 0; i < n; i++) tok[i] = (int32_t)(bn_rng_next(rng) % (uint64_t)vocab);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n sorted values. */
static double median_sorted(const double *v, int n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

/* Sorts x[0..n) (n > 0) and returns its median. */
static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return median_sorted(x, n);
}

/* Bytes of one element of a float matrix. */
static size_t ftype_bytes(bn_ftype type) { return type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2; }

/* Bytes of lm_head's weights. */
static size_t head_weight_bytes(const bn_model *m) {
    const bn_fmat *head = bn_model_lm_head(m);
    return (size_t)head->rows * head->cols * ftype_bytes(head->type);
}

/* The kernel that --kernel names, auto resolved to this CPU's best: asked once per
   benchmark, since cpuid can cost more than a small matmul in a VM. */
static bn_kernel bench_kernel(const cli_model *m) {
    return m->kernel == BN_KERNEL_AUTO ? bn_kernel_detect() : (bn_kernel)m->kernel;
}

/* Bytes of weights one decode step reads: the ternary linears and lm_head. */
static size_t decode_weight_bytes(const bn_model *m) {
    size_t total = 0;
    int l, k;
    for (l = 0; l < bn_model_config(m)->n_layers; l++)
        for (k = 0; k < 7; k++) total += bn_model_linear(m, l, k)->nbytes;
    return total + head_weight_bytes(m);
}

/* ------------------------------------------------------------------ bench */

/* Peak resident set of this process in MB (0 where unknown). */
static double peak_rss_mb(void) {
#ifdef _WIN32
    return 0.0;
#else
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
#if defined(__APPLE__)
    return ru.ru_maxrss / 1e6; /* bytes */
#else
    return ru.ru_maxrss * 1024.0 / 1e6; /* KB */
#endif
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

typedef struct bw_job {
    const uint64_t *buf;
    size_t n; /* words */
    int prefetch;
    uint64_t sums[256];
} bw_job;

/* The sum of words [lo, hi), with four independent chains. */
static uint64_t bw_sum_plain(const uint64_t *buf, size_t lo, size_t hi, int prefetch) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i;
    for (i = lo; i + 4 <= hi; i += 4) {
        if (prefetch && i % 8 == 0) PREFETCH((const char *)(buf + i) + 16384);
        a += buf[i];
        b += buf[i + 1];
        c += buf[i + 2];
        d += buf[i + 3];
    }
    for (; i < hi; i++) a += buf[i];
    return a + b + c + d;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
/* The same with 512-bit loads, so that the loop is bound by memory, not by adds.
   Two loops, not one with a test of the flag inside: on a Zen 5 core that test
   alone held the plain stream to 28-31 GB/s where the loads reach 36-39. */
#define BW_ADD4(i)                                                              \
    do {                                                                        \
        a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(buf + (i))));      \
        b = _mm512_add_epi64(b, _mm512_loadu_si512((const void *)(buf + (i) + 8)));  \
        c = _mm512_add_epi64(c, _mm512_loadu_si512((const void *)(buf + (i) + 16))); \
        d = _mm512_add_epi64(d, _mm512_loadu_si512((const void *)(buf + (i) + 24))); \
    } while (0)
__attribute__((target("avx512f"))) static uint64_t bw_sum_avx512(const uint64_t *buf, size_t lo, size_t hi,
                                                                 int prefetch) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    uint64_t lanes[8], s = 0;
    size_t i;
    if (prefetch) {
        for (i = lo; i + 32 <= hi; i += 32) {
            const char *ahead = (const char *)(buf + i) + 16384;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
            _mm_prefetch(ahead + 128, _MM_HINT_T0);
            _mm_prefetch(ahead + 192, _MM_HINT_T0);
            BW_ADD4(i);
        }
    } else {
        for (i = lo; i + 32 <= hi; i += 32) BW_ADD4(i);
    }
    _mm512_storeu_si512((void *)lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (i = 0; i < 8; i++) s += lanes[i];
    return s + bw_sum_plain(buf, lo + (hi - lo) / 32 * 32, hi, 0);
}
#undef BW_ADD4
#endif

static void bw_worker(void *arg, int ith, int nth) {
    bw_job *j = (bw_job *)arg;
    size_t per = j->n / (size_t)nth / 32 * 32, lo = per * (size_t)ith, hi = ith == nth - 1 ? j->n : lo + per;
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    if (bn_kernel_supported(BN_KERNEL_AVX512)) {
        j->sums[ith] = bw_sum_avx512(j->buf, lo, hi, j->prefetch);
        return;
    }
#endif
    j->sums[ith] = bw_sum_plain(j->buf, lo, hi, j->prefetch);
}

/* The streaming read's buffer: 1 GiB (far larger than any cache), allocated
   and written once, on huge pages where the OS gives them. */
typedef struct bw_buffer {
    char *raw;
    uint64_t *words;
    size_t n; /* words */
} bw_buffer;

static int bw_buffer_open(bw_buffer *b) {
    const size_t bytes = (size_t)1 << 30, huge = (size_t)2 << 20;
    size_t i;
    b->raw = (char *)malloc(bytes + huge);
    if (!b->raw) return 0;
    b->words = (uint64_t *)(b->raw + (huge - (uintptr_t)b->raw % huge));
    b->n = bytes / 8;
#if defined(MADV_HUGEPAGE)
    madvise(b->words, bytes, MADV_HUGEPAGE);
#endif
    for (i = 0; i < b->n; i++) b->words[i] = i;
    return 1;
}

static void bw_buffer_close(bw_buffer *b) { free(b->raw); }

/* One pass of each loop, with the software prefetch and without, over the
   buffer with the pool's threads: the faster one's GB/s. */
static double bw_pass(const bw_buffer *b, bn_pool *pool) {
    bw_job job;
    double best = 0.0;
    int prefetch;
    memset(&job, 0, sizeof job);
    job.buf = b->words;
    job.n = b->n;
    for (prefetch = 0; prefetch < 2; prefetch++) {
        double t0 = bn_time_s(), dt;
        job.prefetch = prefetch;
        bn_pool_run(pool, bw_worker, &job);
        dt = bn_time_s() - t0;
        if (b->n * 8.0 / dt / 1e9 > best) best = b->n * 8.0 / dt / 1e9;
    }
    if (job.sums[0] == 42) printf(" "); /* the sums are used */
    return best;
}

/* The best of 5 pairs of passes: the roofline is the fastest streaming read
   found here, not a slow one. 0 when out of memory. */
static double measure_bandwidth(int n_threads) {
    bw_buffer buf;
    bn_pool *pool = bn_pool_new(n_threads);
    double best = 0.0, g;
    int rep;
    if (!pool || !bw_buffer_open(&buf)) {
        bn_pool_free(pool);
        return 0.0;
    }
    for (rep = 0; rep < 5; rep++)
        if ((g = bw_pass(&buf, pool)) > best) best = g;
    bw_buffer_close(&buf);
    bn_pool_free(pool);
    return best;
}

/* Long enough for an idle pool's threads to stop spinning and sleep, so that
   they take no core from the other pool. */
static void bench_settle(void) {
#ifdef _WIN32
    Sleep(20);
#else
    struct timespec ts;
    ts.tv_sec = 0;
    ts.tv_nsec = 20000000L;
    nanosleep(&ts, NULL);
#endif
}

/* Decode against the roofline, the two measured in turn. A shared machine's
   bandwidth moves by a third from one second to the next; a read measured
   after the decode run, and the best of its passes against the decode's
   mean, compare different moments. So each round times one decode step
   (which reads every weight, about as many bytes as a read pass) and then a
   read pass with as many threads, and a step's share of the roofline is its
   GB/s over that round's read. The figures are the medians over the rounds. */
#define PAIRED_ROUNDS 24
typedef struct paired_result {
    double tg;    /* tok/s: the median step */
    double bw;    /* GB/s: the median round's read */
    double share; /* the median of the rounds' decode GB/s / read GB/s */
    double best;  /* GB/s: the fastest read pass of all the rounds */
} paired_result;

static int bench_paired(bn_context *ctx, const bw_buffer *buf, size_t wbytes, paired_result *out) {
    const int n_ctx = bn_context_get_params(ctx)->n_ctx, vocab = bn_model_config(bn_context_model(ctx))->vocab_size;
    double tg[PAIRED_ROUNDS], bw[PAIRED_ROUNDS], share[PAIRED_ROUNDS];
    bn_pool *pool = bn_pool_new(bn_context_get_params(ctx)->n_threads);
    uint64_t rng = 7;
    int32_t tok;
    int r, pos = n_ctx;
    bn_error err;
    if (!pool) return 0;
    for (r = 0; r < PAIRED_ROUNDS; r++) {
        double t0, dt;
        if (pos + 1 >= n_ctx) { /* start again, untimed */
            bn_context_reset(ctx);
            pos = 0;
        }
        bench_tokens(&tok, 1, vocab, &rng);
        bench_settle();
        t0 = bn_time_s();
        if (bn_eval(ctx, 0, &tok, 1, &err) != BN_OK) {
            fprintf(stderr, "bitnet bench: %s\n", err.msg);
            bn_pool_free(pool);
            return 0;
        }
        dt = bn_time_s() - t0;
        pos++;
        bench_settle();
        tg[r] = 1.0 / dt;
        bw[r] = bw_pass(buf, pool);
        share[r] = tg[r] * (double)wbytes / 1e9 / bw[r];
    }
    bn_pool_free(pool);
    for (r = 0, out->best = 0.0; r < PAIRED_ROUNDS; r++) out->best = MAX(out->best, bw[r]);
    out->tg = median(tg, PAIRED_ROUNDS);
    out->bw = median(bw, PAIRED_ROUNDS);
    out->share = median(share, PAIRED_ROUNDS);
    return 1;
}

/* Tokens per second of n_steps one-token steps after a prompt of n_prompt
   tokens (not timed); n_steps = 0 times the prompt itself (one bn_eval). */
static double bench_eval(bn_context *ctx, int n_prompt, int n_steps, int vocab) {
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_prompt), one[1];
    bn_error err;
    double t0 = 0.0, dt;
    uint64_t rng = 7;
    int i, ok = tok != NULL;
    bn_context_reset(ctx);
    if (ok) bench_tokens(tok, n_prompt, vocab, &rng);
    if (n_steps == 0) t0 = bn_time_s();
    if (ok && bn_eval(ctx, 0, tok, n_prompt, &err) != BN_OK) ok = 0;
    if (n_steps > 0) t0 = bn_time_s();
    for (i = 0; ok && i < n_steps; i++) {
        bench_tokens(one, 1, vocab, &rng);
        if (bn_eval(ctx, 0, one, 1, &err) != BN_OK) ok = 0;
    }
    dt = bn_time_s() - t0;
    free(tok);
    if (!ok) {
        fprintf(stderr, "bitnet bench: %s\n", tok ? err.msg : "out of memory");
        return 0.0;
    }
    return (n_steps > 0 ? n_steps : n_prompt) / dt;
}

typedef struct bench_args {
    cli_model model; /* -m and the engine options */
    int quick, long_ctx, sweep, profile;
    const char *grammar_file, *json_schema_file, *tokenizer_dir; /* the grammar benchmark */
    int json, steps;
} bench_args;

static void bench_defaults(void *p) {
    bench_args *a = (bench_args *)p;
    cli_model_defaults(&a->model);
    a->model.dir = BENCH_MODEL;
    a->steps = 128;
}

static const cli_opt BENCH_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", bench_args, model.dir, "model folder, or ORG/NAME[@REV] (the HF cache)"),
    CLI_FLAG("--quick", bench_args, quick, "a smaller cache, no pp512, tg32 instead of tg128"),
    CLI_INT("--ctx", "N", bench_args, long_ctx, 0, INT_MAX, "only the decode speed after N tokens of context; 0: off"),
    CLI_FLAG("--threads-sweep", bench_args, sweep,
             "only decode and the roofline at 1, 2, 4, ... threads and -t (default: every core), a row each"),
    CLI_FLAG("--profile", bench_args, profile, "then where a decode step's time goes, stage by stage (bn_context_profile)"),
    CLI_STRING("--grammar", "FILE", bench_args, grammar_file,
               "only the cost of sampling under this GBNF grammar, per token, beside the model step"),
    CLI_STRING("--json-schema", "FILE", bench_args, json_schema_file, "the same under a JSON Schema"),
    CLI_FLAG("--json", bench_args, json, "the same under any JSON object"),
    CLI_INT("--steps", "N", bench_args, steps, 1, 100000, "decode steps of the grammar benchmark"),
    CLI_STRING("--tokenizer", "DIR", bench_args, tokenizer_dir,
               "the grammar benchmark's tokenizer (default: the model's, else " BENCH_TOKENIZER ")"),
    CLI_INCLUDE("engine options", bench_args, model, CLI_ENGINE_OPTIONS),
    CLI_END};

/* Loads the model, writing the synthetic one first when it is the default and missing. */
static int bench_load(const cli_model *m, bn_model **model, double *load_s) {
    bn_model_params mp = cli_model_params(m);
    bn_error err;
    cli_model resolved = *m;
    double t0;
    if (strcmp(m->dir, BENCH_MODEL) != 0 && !cli_resolve_model(&resolved)) return EXIT_LOAD;
    m = &resolved;
    if (!cli_file_exists(m->dir, "config.json")) {
        if (strcmp(m->dir, BENCH_MODEL) != 0) {
            fprintf(stderr, "bitnet bench: no config.json in %s\n", m->dir);
            return EXIT_LOAD;
        }
        printf("bench: generating the 2B4T-shaped synthetic model in %s (once)\n", BENCH_MODEL);
        fflush(stdout);
        if (system("python3 tools/gen_synthetic.py " BENCH_MODEL) != 0) return EXIT_LOAD;
    }
    t0 = bn_time_s();
    if (bn_model_load(model, m->dir, &mp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: cannot load the model: %s\n", err.msg);
        return EXIT_LOAD;
    }
    *load_s = bn_time_s() - t0;
    return EXIT_OK;
}

/* --ctx N: the decode speed after N tokens of context, nothing else. */
static int bench_long_context(bn_model *model, bn_context_params cp, int n) {
    bn_context *ctx = NULL;
    bn_error err;
    int vocab = bn_model_config(model)->vocab_size;
    cp.n_ctx = n + 64;
    cp.n_batch = 256;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        return EXIT_RUN;
    }
    bench_eval(ctx, 8, 4, vocab); /* warm-up */
    printf("tg32 @ %d  %.2f tok/s (%d threads, kernel %s, KV cache %s)\n", n, bench_eval(ctx, n, 32, vocab),
           cp.n_threads, cp.backend ? cp.backend->name : bn_kernel_name(cp.kernel), cli_ftype_name(cp.kv_type));
    bn_context_free(ctx);
    return EXIT_OK;
}

/* Bytes of weights a decode step reads in a stage of the profile (0: none). */
static size_t stage_weight_bytes(const bn_model *m, int stage) {
    static const int first[BN_STAGE_COUNT] = {-1, 0, -1, -1, -1, 3, -1, 4, -1, 6, -1, -1};
    static const int count[BN_STAGE_COUNT] = {0, 3, 0, 0, 0, 1, 0, 2, 0, 1, 0, 0};
    size_t total = 0;
    int l, k;
    if (stage == BN_STAGE_HEAD) return head_weight_bytes(m);
    for (l = 0; l < bn_model_config(m)->n_layers; l++)
        for (k = 0; k < count[stage]; k++) total += bn_model_linear(m, l, first[stage] + k)->nbytes;
    return total;
}

/* All the stages' seconds of prof. */
static double profile_seconds(const bn_profile *prof) {
    double total = 0.0;
    int s;
    for (s = 0; s < BN_STAGE_COUNT; s++) total += prof->seconds[s];
    return total;
}

/* A line per stage of prof: its time per forward, its share, its parallel regions per forward and
   their average length, the thread time idle in them (waiting to start, for uneven parts, at the
   end) and, for the matrix products, the weights' GB/s. */
static void print_profile(const bn_profile *prof, const bn_model *m, int nth) {
    double total = profile_seconds(prof);
    int s;
    if (prof->forwards <= 0 || total <= 0.0) return;
    printf("%-10s %9s %6s %8s %10s %7s %9s\n", "stage", "ms/step", "share", "regions", "us/region", "idle", "GB/s");
    for (s = 0; s < BN_STAGE_COUNT; s++) {
        const bn_pool_stats *r = &prof->regions[s];
        double per = prof->seconds[s] / prof->forwards, bytes = (double)stage_weight_bytes(m, s);
        printf("%-10s %9.3f %5.1f%% %8.1f %10.1f %6.1f%%", bn_stage_name((bn_stage)s), 1e3 * per,
               100.0 * prof->seconds[s] / total, (double)r->regions / prof->forwards,
               r->regions ? 1e6 * r->wall / r->regions : 0.0, r->wall > 0.0 ? 100.0 * r->idle / (r->wall * nth) : 0.0);
        if (bytes > 0.0 && per > 0.0) printf(" %9.1f", bytes / per / 1e9);
        printf("\n");
    }
}

/* --profile: n_steps profiled decode steps, stage by stage (print_profile). */
static void bench_profile(bn_context *ctx, const bn_model *m, int n_steps) {
    bn_profile prof;
    int nth = bn_context_get_params(ctx)->n_threads;
    double total;
    memset(&prof, 0, sizeof prof);
    bn_context_profile(ctx, &prof); /* a prompt of one token and n_steps steps: all one-token forwards */
    bench_eval(ctx, 1, n_steps, bn_model_config(m)->vocab_size);
    bn_context_profile(ctx, NULL);
    total = profile_seconds(&prof);
    if (prof.forwards <= 0 || total <= 0.0) return;
    printf("profile    %ld one-token steps, %.3f ms a step with the profile on, %d threads\n", prof.forwards,
           1e3 * total / prof.forwards, nth);
    print_profile(&prof, m, nth);
}

/* bench_paired with n_threads threads: a context of its own, warmed up first. */
static int bench_paired_threads(bn_model *model, bn_context_params cp, int n_threads, const bw_buffer *buf,
                                size_t wbytes, paired_result *out) {
    bn_context *ctx = NULL;
    bn_error err;
    int ok;
    cp.n_threads = n_threads;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        return 0;
    }
    bench_eval(ctx, 8, 4, bn_model_config(model)->vocab_size); /* warm-up */
    ok = bench_paired(ctx, buf, wbytes, out);
    bn_context_free(ctx);
    return ok;
}

/* --threads-sweep: at 1, 2, 4, ... threads and max_threads, decode steps and
   read passes with as many threads in turn (bench_paired). */
static int bench_threads_sweep(bn_model *model, bn_context_params cp, size_t wbytes, int max_threads) {
    int t = 1, rc = EXIT_OK;
    bw_buffer buf;
    if (!bw_buffer_open(&buf)) {
        fprintf(stderr, "bitnet bench: no memory for the 1 GiB bandwidth buffer\n");
        return EXIT_RUN;
    }
    printf("threads-sweep  decode steps and streaming reads with as many threads in turn, %d rounds, medians "
           "(%.1f MB of weights a token)\n",
           PAIRED_ROUNDS, wbytes / 1e6);
    printf("%7s %12s %12s %14s %14s %11s %12s\n", "threads", "decode tok/s", "weights GB/s", "bandwidth GB/s",
           "roofline tok/s", "of roofline", "of best read");
    for (;;) {
        paired_result p;
        if (!bench_paired_threads(model, cp, t, &buf, wbytes, &p)) {
            rc = EXIT_RUN;
            break;
        }
        printf("%7d %12.2f %12.2f %14.2f %14.2f %9.1f %% %10.1f %%\n", t, p.tg, p.tg * wbytes / 1e9, p.bw,
               p.bw * 1e9 / (double)wbytes, 100.0 * p.share, 100.0 * p.tg * wbytes / 1e9 / p.best);
        fflush(stdout);
        if (t == max_threads) break;
        t = MIN(t * 2, max_threads);
    }
    bw_buffer_close(&buf);
    return rc;
}

/* The roofline lines of a full run: decode with n_threads threads and with
   one, each measured in turn with read passes of as many threads
   (bench_paired), after the peak RSS, which the read buffer would raise. */
static int bench_roofline(bn_model *model, bn_context_params cp, size_t wbytes) {
    const int nt[2] = {cp.n_threads, 1};
    paired_result p[2];
    bw_buffer buf;
    int i;
    if (!bw_buffer_open(&buf)) {
        fprintf(stderr, "bitnet bench: no memory for the 1 GiB bandwidth buffer\n");
        return EXIT_RUN;
    }
    cp.n_ctx = 64;
    cp.n_batch = 16;
    for (i = 0; i < 2; i++)
        if (!bench_paired_threads(model, cp, nt[i], &buf, wbytes, &p[i])) {
            bw_buffer_close(&buf);
            return EXIT_RUN;
        }
    bw_buffer_close(&buf);
    printf("bandwidth  %.2f GB/s streaming read (%d threads), %.2f GB/s (1 thread): medians of %d passes, each "
           "after a decode step\n",
           p[0].bw, nt[0], p[1].bw, PAIRED_ROUNDS);
    printf("roofline   %.2f tok/s = %.2f GB/s / %.1f MB per token; decode reaches %.1f %% of it (its steps in turn "
           "with the reads: %.2f tok/s)\n",
           p[0].bw * 1e9 / (double)wbytes, p[0].bw, wbytes / 1e6, 100.0 * p[0].share, p[0].tg);
    printf("roofline1  %.2f tok/s at 1 thread; decode reaches %.1f %% (%.2f tok/s)\n", p[1].bw * 1e9 / (double)wbytes,
           100.0 * p[1].share, p[1].tg);
    return EXIT_OK;
}

/* ---- the grammar benchmark ---- */

static double mean(const double *x, int n) {
    double s = 0.0;
    int i;
    for (i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0.0;
}

typedef struct grammar_bench {
    bn_tokenizer *tok;
    bn_grammar_vocab *vocab;
    bn_grammar *grammar;
    bn_grammar_matcher *mirror; /* follows the generated text: the check and the mask alone */
    bn_sampler *plain, *constrained;
    char *text, *gbnf;
    uint32_t *mask;
    int32_t eos[BN_MAX_EOS + 1];
    int n_eos;
} grammar_bench;

static void grammar_bench_free(grammar_bench *b) {
    bn_sampler_free(b->plain);
    bn_sampler_free(b->constrained);
    bn_grammar_matcher_free(b->mirror);
    bn_grammar_free(b->grammar);
    bn_grammar_vocab_free(b->vocab);
    bn_tokenizer_free(b->tok);
    free(b->text);
    bn_free(b->gbnf);
    free(b->mask);
}

/* The tokenizer, the vocabulary trie (timed), the grammar, two samplers (with and without it)
   and a matcher beside them. Returns an exit status. */
static int grammar_bench_open(grammar_bench *b, const bench_args *a, const bn_model *model) {
    const bn_config *c = bn_model_config(model);
    const char *tdir = a->tokenizer_dir ? a->tokenizer_dir : cli_file_exists(a->model.dir, "tokenizer.json") ? a->model.dir : BENCH_TOKENIZER;
    const char *file = a->grammar_file ? a->grammar_file : a->json_schema_file;
    bn_sampler_params sp = bn_sampler_default_params(), plain = sp;
    bn_error err;
    size_t len = 0;
    double t0;
    int i;
    memset(b, 0, sizeof *b);
    if (!!a->grammar_file + !!a->json_schema_file + !!a->json > 1)
        return cli_usage_error(&cmd_bench, "give one of --grammar, --json-schema and --json");
    if (bn_tokenizer_load(&b->tok, tdir, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        return EXIT_LOAD;
    }
    for (i = 0; i < c->n_eos; i++) b->eos[b->n_eos++] = c->eos_token_ids[i];
    if (bn_tokenizer_eos_id(b->tok) >= 0) b->eos[b->n_eos++] = bn_tokenizer_eos_id(b->tok);
    t0 = bn_time_s();
    if (bn_grammar_vocab_new(&b->vocab, b->tok, b->eos, b->n_eos, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        return EXIT_RUN;
    }
    printf("grammar    %s %s; %d tokens of %s in a trie in %.0f ms\n", a->grammar_file ? "GBNF" : "JSON Schema",
           file ? file : "{\"type\": \"object\"} (--json)", bn_tokenizer_vocab_size(b->tok), tdir, (bn_time_s() - t0) * 1e3);
    if (file) {
        char *data;
        if (!cli_read_input(file, &data, &len)) return EXIT_RUN;
        b->text = (char *)malloc(len + 1);
        if (b->text) memcpy(b->text, data, len), b->text[len] = 0;
        free(data);
        if (!b->text) return EXIT_RUN;
    }
    if (a->grammar_file) {
        sp.grammar = b->text;
    } else {
        sp.json_schema = a->json ? "{\"type\": \"object\"}" : b->text;
        if (bn_json_schema_to_gbnf(sp.json_schema, strlen(sp.json_schema), &b->gbnf, &len, &err) != BN_OK) {
            fprintf(stderr, "bitnet bench: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    if (bn_grammar_parse(&b->grammar, b->gbnf ? b->gbnf : b->text, b->gbnf ? len : strlen(b->text), NULL, &err) != BN_OK ||
        bn_grammar_matcher_new(&b->mirror, b->grammar, &err) != BN_OK ||
        bn_sampler_new(&b->plain, &plain, c->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    sp.grammar_vocab = b->vocab;
    b->mask = (uint32_t *)calloc((size_t)c->vocab_size / 32 + 1, sizeof(uint32_t));
    if (!b->mask || bn_sampler_new(&b->constrained, &sp, c->vocab_size, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", b->mask ? err.msg : "out of memory");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The cost of sampling under a grammar, per token, beside the model step: each step runs the
   model, then on the same logits the plain sampler, the grammar's check of the token it drew,
   the full mask of allowed tokens, and the sampler with the grammar (whose token goes on). */
static int bench_grammar(const bench_args *a, bn_model *model, bn_context_params cp) {
    const bn_config *c = bn_model_config(model);
    grammar_bench b;
    bn_context *ctx = NULL;
    bn_error err;
    int n = a->steps, i, k, allowed = 0, texts = 0, rc;
    double *t[5]; /* model, plain sampling, check, mask, sampling with the grammar */
    double overhead;
    int32_t token;
    rc = grammar_bench_open(&b, a, model);
    cp.n_ctx = MIN(n + 8, c->max_seq_len);
    for (k = 0; k < 5; k++) t[k] = (double *)calloc((size_t)n, sizeof(double));
    if (!rc && (!t[4] || bn_context_new(&ctx, model, &cp, &err) != BN_OK)) {
        fprintf(stderr, "bitnet bench: %s\n", t[4] ? err.msg : "out of memory");
        rc = EXIT_RUN;
    }
    token = c->bos_token_id >= 0 ? c->bos_token_id : 0;
    for (i = 0; !rc && i < n && bn_seq_len(ctx, 0) < cp.n_ctx; i++) {
        const float *logits;
        int32_t drawn;
        double t0 = bn_time_s(), t1, t2, t3, t4;
        if (bn_eval(ctx, 0, &token, 1, &err) != BN_OK) {
            fprintf(stderr, "bitnet bench: %s\n", err.msg);
            rc = EXIT_RUN;
            break;
        }
        logits = bn_get_logits(ctx, -1);
        t1 = bn_time_s();
        drawn = bn_sampler_sample(b.plain, logits);
        t2 = bn_time_s();
        allowed += bn_grammar_matcher_allows(b.mirror, b.vocab, drawn);
        t3 = bn_time_s();
        bn_grammar_matcher_mask(b.mirror, b.vocab, b.mask, c->vocab_size);
        t4 = bn_time_s();
        token = bn_sampler_sample(b.constrained, logits);
        if (token >= 0) bn_sampler_accept(b.constrained, token);
        t[4][i] = bn_time_s() - t4;
        t[0][i] = t1 - t0, t[1][i] = t2 - t1, t[2][i] = t3 - t2, t[3][i] = t4 - t3;
        if (token < 0 || !bn_grammar_matcher_accept_token(b.mirror, b.vocab, token) ||
            !bn_grammar_matcher_can_continue(b.mirror)) { /* a text is complete: the next one starts */
            texts++;
            bn_sampler_reset_grammar(b.constrained);
            bn_grammar_matcher_reset(b.mirror);
            if (token < 0) token = b.eos[0];
        }
    }
    n = i;
    if (!rc && n > 0) {
        double model_mean = mean(t[0], n), with_mean = mean(t[4], n), m[5], max_with, max_mask;
        for (i = 0, overhead = 0.0; i < n; i++) overhead += t[4][i] - t[1][i];
        overhead /= n;
        for (k = 0; k < 5; k++) m[k] = median(t[k], n); /* sorts each */
        max_with = t[4][n - 1];
        max_mask = t[3][n - 1];
        printf("steps      %d (threads %d), each: model, then on its logits plain sampling, the grammar's check of the\n"
               "           token drawn, the full mask, and sampling with the grammar (whose token goes on); %d texts ended\n",
               n, cp.n_threads, texts);
        printf("model      %.2f ms median per step (%.2f mean)\n", m[0] * 1e3, model_mean * 1e3);
        printf("sampling   plain %.0f us median; with the grammar %.0f us median, %.0f mean, %.0f max\n", m[1] * 1e6,
               m[4] * 1e6, with_mean * 1e6, max_with * 1e6);
        printf("grammar    +%.1f us per token on average = %.2f %% of the model step; the plain draw was allowed at %d of\n"
               "           %d steps (its check: %.1f us median); a full mask: %.0f us median, %.0f max\n",
               overhead * 1e6, 100.0 * overhead / model_mean, allowed, n, m[2] * 1e6, m[3] * 1e6, max_mask * 1e6);
    }
    for (k = 0; k < 5; k++) free(t[k]);
    bn_context_free(ctx);
    grammar_bench_free(&b);
    return rc;
}

static int bench_run(void *p, int argc, char **argv) {
    const bench_args *a = (const bench_args *)p;
    bn_context_params cp = cli_context_params(&a->model);
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_error err;
    const bn_config *c;
    size_t mapped = 0, allocated = 0, wbytes, kv_bytes;
    double load_s = 0.0, tg, tg1 = 0.0;
    int rc = bench_load(&a->model, &model, &load_s), quick = a->quick;
    (void)argc;
    (void)argv;
    if (rc) return rc;
    if (a->model.metal && (a->sweep || a->profile)) { /* they measure the CPU path's threads and stages */
        bn_model_free(model);
        return cli_usage_error(&cmd_bench, "%s measures the CPU path: not with --metal",
                               a->sweep ? "--threads-sweep" : "--profile");
    }
    c = bn_model_config(model);
    bn_model_memory(model, &mapped, &allocated);
    wbytes = decode_weight_bytes(model);
    cp.n_threads = a->model.n_threads > 0 ? a->model.n_threads : bn_cpu_count();
    cp.kernel = bench_kernel(&a->model); /* named in the report */
    if (!cli_backend(&a->model, &cp)) {
        bn_model_free(model);
        return EXIT_RUN;
    }
    if (a->long_ctx > 0) {
        rc = bench_long_context(model, cp, a->long_ctx);
        bn_model_free(model);
        return rc;
    }
    if (a->grammar_file || a->json_schema_file || a->json) {
        rc = bench_grammar(a, model, cp);
        bn_model_free(model);
        return rc;
    }
    if (a->sweep) {
        cp.n_ctx = 64;
        cp.n_batch = 16;
        rc = bench_threads_sweep(model, cp, wbytes, cp.n_threads);
        bn_model_free(model);
        return rc;
    }
    cp.n_ctx = quick ? 256 : 640;
    cp.n_batch = quick ? 128 : 512;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench: %s\n", err.msg);
        bn_model_free(model);
        return EXIT_RUN;
    }
    kv_bytes = (size_t)2 * c->n_layers * cp.n_ctx * c->n_kv_heads * c->head_dim * (cp.kv_type == BN_FTYPE_F16 ? 2 : 4);
    printf("model      %s: %d layers, hidden %d, ffn %d, vocab %d, loaded in %.1f s\n", a->model.dir, c->n_layers,
           c->hidden_size, c->intermediate_size, c->vocab_size, load_s);
    printf("layout     %s, lm_head %s, kernel %s, threads %d\n",
           bn_model_linear(model, 0, 0)->layout == BN_TLAYOUT_TQ1 ? "tq1" : "i2",
           cli_ftype_name(bn_model_lm_head(model)->type), cp.backend ? cp.backend->name : bn_kernel_name(cp.kernel),
           cp.n_threads);
    printf("memory     mapped %.1f MB, allocated %.1f MB, KV cache %.1f MB (%s, n_ctx %d)\n", mapped / 1e6,
           allocated / 1e6, kv_bytes / 1e6, cli_ftype_name(cp.kv_type), cp.n_ctx);
    printf("weights    %.1f MB read per decoded token (ternary linears + lm_head)\n", wbytes / 1e6);
    fflush(stdout);
    bench_eval(ctx, 8, 0, c->vocab_size); /* warm-up: first touch of the weights, KV cache, scratch */
    printf("pp128      %.2f tok/s\n", bench_eval(ctx, 128, 0, c->vocab_size));
    fflush(stdout);
    if (!quick) {
        printf("pp512      %.2f tok/s\n", bench_eval(ctx, 512, 0, c->vocab_size));
        fflush(stdout);
    }
    tg = bench_eval(ctx, 1, quick ? 32 : 128, c->vocab_size);
    printf("tg%-3d      %.2f tok/s (%d threads), %.2f GB/s of weights\n", quick ? 32 : 128, tg, cp.n_threads,
           tg * wbytes / 1e9);
    fflush(stdout);
    if (a->profile) bench_profile(ctx, model, quick ? 32 : 128);
    bn_context_free(ctx);
    ctx = NULL;
    if (cp.backend) { /* what follows measures the CPU */
        bn_model_free(model);
        return EXIT_OK;
    }
    cp.n_threads = 1;
    if (bn_context_new(&ctx, model, &cp, &err) == BN_OK) {
        tg1 = bench_eval(ctx, 1, quick ? 16 : 64, c->vocab_size);
        printf("tg (1 thr) %.2f tok/s, %.2f GB/s of weights\n", tg1, tg1 * wbytes / 1e9);
        if (!quick) printf("pp128 (1)  %.2f tok/s\n", bench_eval(ctx, 128, 0, c->vocab_size));
        fflush(stdout);
        bn_context_free(ctx);
    }
    /* The budget is the model's files + KV cache + 64 MB: the load converts
       the packed weights, copies the float matrices into their tiled layout
       and drops the file pages it no longer reads, so what stays is about
       one copy of the model. (Measured before the bandwidth buffer.) */
    printf("peak RSS   %.1f MB (model files %.1f MB, allocated %.1f MB, KV %.1f MB; budget: files + KV + 64 MB = %.1f "
           "MB)\n",
           peak_rss_mb(), mapped / 1e6, allocated / 1e6, kv_bytes / 1e6, (mapped + kv_bytes) / 1e6 + 64.0);
    cp.n_threads = a->model.n_threads > 0 ? a->model.n_threads : bn_cpu_count();
    rc = bench_roofline(model, cp, wbytes);
    bn_model_free(model);
    return rc;
}

const cli_command cmd_bench = {
    "bench",
    "prompt and decode speed against the memory bandwidth (roofline)",
    "[-m DIR] [options]",
    "Prompt and decode speed against this machine's memory bandwidth: pp128 and pp512 (one bn_eval of\n"
    "128 / 512 tokens), tg128 (128 one-token steps) with all threads and with one, the bytes of weights a\n"
    "decode step reads, the peak RSS, the streaming read bandwidth measured here and the roofline\n"
    "(bandwidth / bytes per token) with all threads and with one: decode steps and read passes of 1 GiB\n"
    "in turn, medians of 24 rounds, as a shared machine's bandwidth moves from one second to the next.\n"
    "--threads-sweep: decode and its roofline at 1, 2, 4, ... threads instead, each against the\n"
    "bandwidth measured with as many threads, to show how decoding scales with the cores. --profile:\n"
    "where a decode step's time goes, stage by stage, with the parallel regions' idle thread time.\n"
    "Without -m it measures " BENCH_MODEL ", which tools/gen_synthetic.py\n"
    "writes on first use (the 2B4T shape, random weights). A benchmark, not a test: the numbers\n"
    "depend on the machine and its load.\n",
    BENCH_OPTIONS,
    sizeof(bench_args),
    bench_defaults,
    bench_run,
    0,
    0};

/* ------------------------------------------------------------------ bench-batch */

typedef struct bench_count {
    int tokens;
} bench_count;

static int bench_on_token(void *user, const bn_token_event *ev) {
    if (ev->token >= 0) ((bench_count *)user)->tokens++; /* not the closing call */
    return 0;
}

/* B sequences through a batcher: tok_s gets the decode steps' total tok/s; with prof, they are
   profiled (bn_context_profile) and *step_s gets their seconds a step, the batcher's included. */
static int bench_one(const cli_model *m, bn_model *model, int B, int steps, int plen, double *tok_s, bn_profile *prof,
                     double *step_s) {
    bn_context_params cp = cli_context_params(m);
    bn_context *ctx = NULL;
    bn_batcher *b = NULL;
    bn_batcher_params bp = bn_batcher_default_params();
    bn_request_params rp = bn_request_default_params();
    bench_count count;
    bn_error err;
    int32_t *prompt = (int32_t *)malloc(sizeof(int32_t) * (size_t)plen);
    int i, n_active = 0, V = bn_model_config(model)->vocab_size, rc = EXIT_OK;
    double t0, elapsed;
    uint64_t rng = 1234;
    cp.n_seq = B;
    cp.n_ctx = plen + steps + 4;
    cp.n_batch = MAX(B * plen, B);
    if (!cli_backend(m, &cp)) {
        free(prompt);
        return EXIT_RUN;
    }
    if (!prompt || bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench-batch: %s\n", prompt ? err.msg : "out of memory");
        free(prompt);
        return EXIT_RUN;
    }
    bp.prefill_chunk = B * plen;
    rp.max_new_tokens = steps + 2;
    rp.ignore_eos = 1;
    rp.on_token = bench_on_token;
    rp.user = &count;
    if (bn_batcher_new(&b, ctx, &bp, &err) != BN_OK) rc = EXIT_RUN;
    for (i = 0; !rc && i < B; i++) {
        bench_tokens(prompt, plen, V, &rng);
        if (bn_batcher_add(b, prompt, plen, &rp, NULL, &err) != BN_OK) rc = EXIT_RUN;
    }
    /* step 1 processes every prompt and samples each first token; then time */
    if (!rc && bn_batcher_step(b, &n_active, &err) != BN_OK) rc = EXIT_RUN;
    count.tokens = 0;
    if (prof) bn_context_profile(ctx, prof);
    t0 = bn_time_s();
    for (i = 0; !rc && i < steps; i++)
        if (bn_batcher_step(b, &n_active, &err) != BN_OK) rc = EXIT_RUN;
    elapsed = bn_time_s() - t0;
    *tok_s = rc ? 0.0 : count.tokens / elapsed;
    if (step_s) *step_s = elapsed / steps;
    if (prof) bn_context_profile(ctx, NULL);
    if (rc) fprintf(stderr, "bitnet bench-batch: %s\n", err.msg);
    bn_batcher_free(b);
    bn_context_free(ctx);
    free(prompt);
    return rc;
}

/* Every thread of a pool multiplies the same in-cache slice of weights at once (each into its
   own output): an all-core turbo is slower than a one-core one, and the cores share the L3 and
   the mesh, so the in-cache rate is measured with all the threads working, not on one and
   multiplied. */
typedef struct slice_job {
    const bn_tmat *t; /* a ternary slice, or */
    const bn_fmat *f; /* a float one */
    const int8_t *xq;
    const float *x, *act_scale;
    int B;
    float *y;      /* [nth][y_stride] */
    size_t y_stride;
    bn_kernel kernel;
} slice_job;

static void slice_worker(void *arg, int ith, int nth) {
    const slice_job *j = (const slice_job *)arg;
    float *y = j->y + (size_t)ith * j->y_stride;
    (void)nth;
    if (j->t)
        bn_tmat_matmul(j->t, j->xq, j->act_scale, j->B, y, NULL, j->kernel);
    else
        bn_fmat_matmul_kernel(j->f, j->x, j->B, y, NULL, j->kernel);
}

/* The best seconds of `reps` rounds in which every thread of the pool does the slice's matmul. */
static double best_slice_seconds(bn_pool *pool, slice_job *job, int reps) {
    double best = 1e30;
    int r;
    for (r = 0; r < reps; r++) {
        double t0 = bn_time_s(), dt;
        bn_pool_run(pool, slice_worker, job);
        dt = bn_time_s() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/* Seconds a decode step spends in the ternary linears' and in the head's products at best. */
typedef struct matmul_floor {
    double ternary_s, head_s;
} matmul_floor;

/* The matmul_floor of a step of B tokens: each family's multiply-adds at the rate its kernel
   reaches over a slice of about 256 KB of the model's own weights (in L2 after the first call)
   on every one of n_threads threads at once. An upper bound on speed: it leaves out memory,
   attention and everything else. Zeros when out of memory. */
static matmul_floor matmul_floor_seconds(const bn_model *m, int B, int n_threads, bn_kernel kernel) {
    const bn_config *cfg = bn_model_config(m);
    const size_t slice_bytes = (size_t)256 << 10;
    bn_tmat t = *bn_model_linear(m, 0, 4); /* gate_proj */
    bn_fmat f = *bn_model_lm_head(m);
    size_t row_bytes = t.nbytes / (size_t)t.rows, ternary_macs = 0;
    int cols = MAX(t.cols, f.cols), l, i, frows;
    /* activations 64-byte aligned, as a context's are (a vector load that straddles two lines costs two) */
    char *mem = (char *)malloc((size_t)B * cols * 5 + 128);
    int8_t *xq = mem ? (int8_t *)(mem + (64 - (uintptr_t)mem % 64)) : NULL;
    float *x = mem ? (float *)(xq + ((size_t)B * cols + 63) / 64 * 64) : NULL;
    float *scales = (float *)malloc(sizeof(float) * (size_t)B), *y;
    bn_pool *pool = bn_pool_new(n_threads);
    matmul_floor floor_s = {0.0, 0.0};
    slice_job job;
    for (l = 0; l < cfg->n_layers; l++)
        for (i = 0; i < 7; i++) ternary_macs += (size_t)bn_model_linear(m, l, i)->rows * bn_model_linear(m, l, i)->cols;
    t.rows = (int)MIN((size_t)t.rows, MAX(slice_bytes / row_bytes, 4));
    t.nbytes = (size_t)t.rows * row_bytes;
    frows = (int)(slice_bytes / ((size_t)f.cols * ftype_bytes(f.type))) / BN_FMAT_TILE_ROWS * BN_FMAT_TILE_ROWS;
    f.rows = MIN(f.rows, MAX(frows, BN_FMAT_TILE_ROWS)); /* whole groups of a tiled matrix */
    memset(&job, 0, sizeof job);
    job.y_stride = ((size_t)B * (size_t)MAX(t.rows, f.rows) + 15) / 16 * 16; /* whole cache lines a thread */
    y = (float *)malloc(sizeof(float) * job.y_stride * (size_t)bn_pool_size(pool));
    if (xq && x && scales && y && pool) {
        double ts, fs;
        for (i = 0; i < B * cols; i++) {
            xq[i] = (int8_t)(i * 37 % 255 - 127);
            x[i] = (float)(i * 37 % 255 - 127) / 127.0f;
        }
        for (i = 0; i < B; i++) scales[i] = 1.0f;
        job.xq = xq;
        job.x = x;
        job.act_scale = scales;
        job.B = B;
        job.y = y;
        job.kernel = kernel;
        job.t = &t;
        ts = best_slice_seconds(pool, &job, 20);
        job.t = NULL;
        job.f = &f;
        fs = best_slice_seconds(pool, &job, 20);
        floor_s.ternary_s = (double)ternary_macs / ((double)t.rows * t.cols) * ts / bn_pool_size(pool);
        floor_s.head_s = (double)bn_model_lm_head(m)->rows / f.rows * fs / bn_pool_size(pool);
    }
    bn_pool_free(pool);
    free(mem);
    free(scales);
    free(y);
    return floor_s;
}
typedef struct bench_batch_args {
    cli_model model; /* -m and the engine options */
    const char *sizes;
    int steps, prompt_len, rounds, profile;
} bench_batch_args;

static void bench_batch_defaults(void *p) {
    bench_batch_args *a = (bench_batch_args *)p;
    cli_model_defaults(&a->model);
    a->sizes = "1,2,4,8,16";
    a->steps = 32;
    a->prompt_len = 16;
    a->rounds = 1;
}

static const cli_opt BENCH_BATCH_OPTIONS[] = {
    CLI_STRING("-m, --model", "DIR", bench_batch_args, model.dir, "model folder, or ORG/NAME[@REV] (the HF cache)"),
    CLI_STRING("-b, --batch-sizes", "LIST", bench_batch_args, sizes, "the batch sizes B to measure"),
    CLI_INT("-n, --steps", "N", bench_batch_args, steps, 1, INT_MAX, "decode steps timed for each B"),
    CLI_INT("--prompt-len", "N", bench_batch_args, prompt_len, 1, INT_MAX, "prompt ids per sequence"),
    CLI_INT("-r, --rounds", "N", bench_batch_args, rounds, 1, 1000,
            "go through the list of B N times, so that the runs of different B alternate"),
    CLI_FLAG("--profile", bench_batch_args, profile,
             "then where a step of the largest B spends its time, stage by stage (bn_context_profile)"),
    CLI_INCLUDE("engine options", bench_batch_args, model, CLI_ENGINE_OPTIONS),
    CLI_END};

/* The least seconds a step can take by the roofline model: each family of matrices takes its
   in-cache arithmetic time or the time to stream its bytes once, whichever is longer. */
static double roofline_seconds(matmul_floor f, const bn_model *m, double bw_gbs) {
    double head_bytes = (double)head_weight_bytes(m), ternary_bytes = (double)decode_weight_bytes(m) - head_bytes;
    if (bw_gbs <= 0.0) return 0.0;
    return MAX(f.ternary_s, ternary_bytes / (bw_gbs * 1e9)) + MAX(f.head_s, head_bytes / (bw_gbs * 1e9));
}

/* The table: each B's median, slowest and fastest total tok/s over the rounds (sorted here),
   the median of its per-round ratio to B = 1, the matmul ceiling and the roofline. */
static void bench_batch_table(const int32_t *sizes, int n_b, int rounds, double *rates, double *ratios,
                              const matmul_floor *floors, const bn_model *m, double bw_gbs) {
    double base_med = 0.0;
    int i;
    for (i = 0; i < n_b; i++) {
        qsort(&rates[(size_t)i * rounds], (size_t)rounds, sizeof(double), cmp_double);
        qsort(&ratios[(size_t)i * rounds], (size_t)rounds, sizeof(double), cmp_double);
        if (sizes[i] == 1 && base_med == 0.0) base_med = median_sorted(&rates[(size_t)i * rounds], rounds);
    }
    printf("%4s %12s %9s %9s %12s %8s %18s %18s\n", "B", "total tok/s", "slowest", "fastest", "tok/s/seq", "vs B=1",
           "ceiling", "roofline");
    for (i = 0; i < n_b; i++) {
        const double *r = &rates[(size_t)i * rounds];
        double med = median_sorted(r, rounds), floor_s = floors[i].ternary_s + floors[i].head_s;
        double ceiling = floor_s > 0.0 ? sizes[i] / floor_s : 0.0, roof_s = roofline_seconds(floors[i], m, bw_gbs);
        double roof = roof_s > 0.0 && floor_s > 0.0 ? sizes[i] / roof_s : 0.0;
        if (sizes[i] < 1) continue;
        printf("%4d %12.1f %9.1f %9.1f %12.1f %7.2fx %9.1f", (int)sizes[i], med, r[0], r[rounds - 1], med / sizes[i],
               median_sorted(&ratios[(size_t)i * rounds], rounds), ceiling);
        if (base_med > 0.0) printf(" (%5.2fx)", ceiling / base_med);
        else printf("%9s", "");
        printf(" %9.1f (%3.0f %%)\n", roof, roof > 0.0 ? 100.0 * med / roof : 0.0);
    }
    printf("roofline: each family of matrices at its in-cache rate or at %.2f GB/s, the streaming read\n"
           "measured here, whichever is slower; (%%): the median's share of it\n", bw_gbs);
}

/* --profile: the decode steps of the largest B once more, profiled: the stages of the forward
   pass, and what the step spends outside it (the batcher: sampling, bookkeeping). */
static int bench_batch_profile(const cli_model *m, bn_model *model, const int32_t *sizes, int n_b, int steps, int plen,
                               int n_threads) {
    bn_profile prof;
    double tok_s = 0.0, step_s = 0.0, fwd_s;
    int i, B = 0, rc;
    for (i = 0; i < n_b; i++) B = MAX(B, (int)sizes[i]);
    memset(&prof, 0, sizeof prof);
    rc = bench_one(m, model, B, steps, plen, &tok_s, &prof, &step_s);
    if (rc || prof.forwards <= 0) return rc;
    fwd_s = profile_seconds(&prof) / prof.forwards;
    printf("profile    B = %d, %ld steps, %.3f ms a step with the profile on (%.1f tok/s), %d threads: the forward "
           "pass %.3f ms, the batcher %.3f ms\n",
           B, prof.forwards, 1e3 * step_s, tok_s, n_threads, 1e3 * fwd_s, 1e3 * (step_s - fwd_s));
    print_profile(&prof, model, n_threads);
    return EXIT_OK;
}

static int bench_batch_run(void *p, int argc, char **argv) {
    const bench_batch_args *a = (const bench_batch_args *)p;
    bn_model_params mp = cli_model_params(&a->model);
    cli_model resolved;
    bn_model *model = NULL;
    bn_error err;
    int32_t *sizes = NULL;
    int i, k, n_b, rounds = a->rounds, rc = EXIT_OK;
    int n_threads = a->model.n_threads > 0 ? a->model.n_threads : bn_cpu_count();
    bn_kernel kernel = bench_kernel(&a->model);
    double *rates, *ratios, bw_gbs = 0.0;
    matmul_floor *floors;
    (void)argc;
    (void)argv;
    n_b = cli_parse_ids(a->sizes, &sizes);
    if (n_b <= 0) {
        free(sizes);
        return cli_usage_error(&cmd_bench_batch, "-b expects batch sizes such as 1,2,4,8, got '%s'", a->sizes);
    }
    if (!a->model.dir) {
        free(sizes);
        return cli_usage_error(&cmd_bench_batch, "no model given: use -m DIR");
    }
    resolved = a->model;
    if (!cli_resolve_model(&resolved)) {
        free(sizes);
        return EXIT_LOAD;
    }
    if (bn_model_load(&model, resolved.dir, &mp, &err) != BN_OK) {
        fprintf(stderr, "bitnet bench-batch: cannot load the model: %s\n", err.msg);
        free(sizes);
        return EXIT_LOAD;
    }
    rates = (double *)calloc((size_t)n_b * (size_t)rounds, sizeof(double));
    floors = (matmul_floor *)calloc((size_t)n_b, sizeof(matmul_floor));
    ratios = (double *)calloc((size_t)n_b * (size_t)rounds, sizeof(double));
    if (!rates || !ratios || !floors) rc = EXIT_RUN;
    for (k = 0; !rc && k < rounds; k++) {
        double base = 0.0;
        if (rounds > 1) fprintf(stderr, "bitnet bench-batch: round %d of %d\n", k + 1, rounds);
        for (i = 0; !rc && i < n_b; i++) {
            matmul_floor f;
            if (sizes[i] < 1) continue;
            rc = bench_one(&a->model, model, sizes[i], a->steps, a->prompt_len, &rates[(size_t)i * rounds + k], NULL,
                           NULL);
            /* the best of the rounds: a busy host slows the in-cache rate too */
            f = matmul_floor_seconds(model, (int)sizes[i], n_threads, kernel);
            if (f.ternary_s > 0.0 && (floors[i].ternary_s == 0.0 || f.ternary_s < floors[i].ternary_s))
                floors[i].ternary_s = f.ternary_s;
            if (f.head_s > 0.0 && (floors[i].head_s == 0.0 || f.head_s < floors[i].head_s)) floors[i].head_s = f.head_s;
        }
        for (i = 0; i < n_b; i++)
            if (base == 0.0 && sizes[i] == 1) base = rates[(size_t)i * rounds + k];
        for (i = 0; i < n_b; i++)
            ratios[(size_t)i * rounds + k] = base > 0.0 ? rates[(size_t)i * rounds + k] / base : 0.0;
    }
    if (!rc) bw_gbs = measure_bandwidth(n_threads);
    if (!rc) bench_batch_table(sizes, n_b, rounds, rates, ratios, floors, model, bw_gbs);
    if (!rc && a->profile) rc = bench_batch_profile(&a->model, model, sizes, n_b, a->steps, a->prompt_len, n_threads);
    bn_model_free(model);
    free(sizes);
    free(rates);
    free(ratios);
    free(floors);
    return rc;
}

const cli_command cmd_bench_batch = {
    "bench-batch",
    "decoding throughput with B sequences at once",
    "-m DIR [options]",
    "Decoding throughput with B sequences at once (continuous batching through bn_batcher: one\n"
    "bn_forward per step, one token per sequence). Each sequence gets a prompt of --prompt-len ids;\n"
    "then --steps decode steps are timed. Prints each B's median, slowest and fastest total tok/s over\n"
    "the rounds, tok/s per sequence, and as 'vs B=1' the median over rounds of the round's ratio to\n"
    "B = 1 (a shared machine's memory bandwidth drifts: the ratio of neighbouring runs is steadier\n"
    "than the ratio of two medians).\n"
    "'ceiling' is the most a step of B tokens could give if it did nothing but its matrix products\n"
    "(the ternary linears and the lm_head) at the rate the kernels reach on weights already in cache\n"
    "(every thread at once, best of the rounds), with its ratio to B = 1's median:\n"
    "where memory is no longer the limit, the arithmetic is, and no batch size goes past it.\n"
    "'roofline' is the same bound with memory counted: each family of matrices at its in-cache rate\n"
    "or at the streaming read measured here (every thread), whichever is slower, and the median's\n"
    "share of it.\n"
    "--profile then times the largest B's steps once more, stage by stage (bn_context_profile).\n",
    BENCH_BATCH_OPTIONS,
    sizeof(bench_batch_args),
    bench_batch_defaults,
    bench_batch_run,
    0,
    0};
