/* bench: prompt-processing and decode speed of a model, against this
   machine's memory bandwidth.

     make bench                         (the 2B4T-shaped synthetic model, generated on first use)
     build/bench [MODEL_DIR] [-t N] [--layout i2|tq1] [--head bf16|f16|f32|i8] [--kv f32|f16] [--quick]
     build/bench [MODEL_DIR] [-t N] --ctx N [--kv f32|f16]   decode at a long context only

   Reports pp128 / pp512 tok/s (one bn_eval of 128 / 512 tokens), tg128 tok/s
   (128 single-token bn_eval calls) with all threads and with one, the bytes
   of weights a decode step reads, the effective GB/s, the streaming read
   bandwidth of this machine measured here (all threads sum a 1 GiB buffer),
   the roofline (bandwidth / bytes per token) and the ratio to it, and the
   peak RSS of the model phase (measured before the bandwidth buffer is
   allocated). A benchmark, not a test: numbers depend on the machine and
   its load. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise: huge pages for the weights and the bandwidth buffer */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#define DEFAULT_MODEL "build/bitnet-2b4t-synth"

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

/* ---- streaming read bandwidth ---- */
typedef struct {
    const uint64_t *buf;
    size_t n;
    int prefetch; /* also ask for the data 16 KB ahead, as the decode kernels do */
    uint64_t sums[256];
} bw_job;

/* Sums 64-bit words with the widest vectors this build has (bench is built
   with -march=native), so that the loop is bound by memory, not by adds. */
static void bw_worker(void *arg, int ith, int nth) {
    bw_job *j = (bw_job *)arg;
    size_t per = j->n / (size_t)nth / 32 * 32, lo = per * (size_t)ith, hi = ith == nth - 1 ? j->n : lo + per, i;
    uint64_t s = 0;
#if defined(__AVX512F__)
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    uint64_t lanes[8];
    for (i = lo; i + 32 <= hi; i += 32) {
        if (j->prefetch) {
            const char *ahead = (const char *)(j->buf + i) + 16384;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
            _mm_prefetch(ahead + 128, _MM_HINT_T0);
            _mm_prefetch(ahead + 192, _MM_HINT_T0);
        }
        a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(j->buf + i)));
        b = _mm512_add_epi64(b, _mm512_loadu_si512((const void *)(j->buf + i + 8)));
        c = _mm512_add_epi64(c, _mm512_loadu_si512((const void *)(j->buf + i + 16)));
        d = _mm512_add_epi64(d, _mm512_loadu_si512((const void *)(j->buf + i + 24)));
    }
    _mm512_storeu_si512((void *)lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (i = 0; i < 8; i++) s += lanes[i];
#elif defined(__AVX2__)
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    uint64_t lanes[4];
    for (i = lo; i + 16 <= hi; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(j->buf + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(j->buf + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(j->buf + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(j->buf + i + 12)));
    }
    _mm256_storeu_si256((__m256i *)lanes, _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    for (i = 0; i < 4; i++) s += lanes[i];
#else
    for (i = lo; i < hi; i++) s += j->buf[i];
#endif
    j->sums[ith] = s;
}

/* Best of 5 passes over a 1 GiB buffer (far larger than any cache), each
   pass both plainly and with software prefetch, on huge pages where the OS
   gives them: the roofline is the fastest streaming read we can find, not
   the slowest. */
static double measure_bandwidth(int n_threads) {
    size_t bytes = (size_t)1 << 30, i;
    bw_job job;
    bn_pool *pool = bn_pool_new(n_threads);
    double best = 0.0;
    int rep;
    void *raw = malloc(bytes + ((size_t)2 << 20));
    uint64_t *buf = raw ? (uint64_t *)((char *)raw + (((size_t)2 << 20) - (uintptr_t)raw % ((size_t)2 << 20))) : NULL;
    if (!buf || !pool) {
        free(raw);
        bn_pool_free(pool);
        return 0.0;
    }
#if defined(MADV_HUGEPAGE)
    madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    for (i = 0; i < bytes / 8; i++) buf[i] = i;
    job.buf = buf;
    job.n = bytes / 8;
    for (rep = 0; rep < 10; rep++) {
        double t0 = bn_time_s(), dt;
        job.prefetch = rep % 2;
        bn_pool_run(pool, bw_worker, &job);
        dt = bn_time_s() - t0;
        if (bytes / dt / 1e9 > best) best = (double)bytes / dt / 1e9;
    }
    if (job.sums[0] == 42) printf(" "); /* keep the sums alive */
    free(raw);
    bn_pool_free(pool);
    return best;
}

/* ---- the model ---- */
static size_t tmat_bytes(const bn_tmat *m) { return m->nbytes; }

static size_t decode_weight_bytes(const bn_model *m) {
    const bn_config *c = bn_model_config(m);
    size_t total = 0, esz;
    int l;
    for (l = 0; l < c->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        total += tmat_bytes(&L->wq) + tmat_bytes(&L->wk) + tmat_bytes(&L->wv) + tmat_bytes(&L->wo) +
                 tmat_bytes(&L->w_gate) + tmat_bytes(&L->w_up) + tmat_bytes(&L->w_down);
    }
    esz = m->lm_head.type == BN_FTYPE_F32 ? 4 : m->lm_head.type == BN_FTYPE_I8 ? 1 : 2;
    total += (size_t)m->lm_head.rows * m->lm_head.cols * esz;
    return total;
}

static int make_tokens(int32_t *tok, int n, int vocab, uint32_t seed) {
    int i;
    for (i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)vocab);
    }
    return n;
}

/* Tokens per second of one bn_eval of n tokens on an empty sequence. */
static double bench_pp(bn_context *ctx, int n, int vocab) {
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    bn_error err;
    double t0, dt;
    bn_context_reset(ctx);
    make_tokens(tok, n, vocab, 7);
    t0 = bn_time_s();
    if (bn_eval(ctx, 0, tok, n, &err) != BN_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        free(tok);
        return 0.0;
    }
    dt = bn_time_s() - t0;
    free(tok);
    return n / dt;
}

/* Tokens per second of n single-token steps after a 1-token prompt. */
static double bench_tg(bn_context *ctx, int n, int vocab) {
    int32_t tok[1];
    bn_error err;
    double t0, dt;
    int i;
    bn_context_reset(ctx);
    make_tokens(tok, 1, vocab, 3);
    if (bn_eval(ctx, 0, tok, 1, &err) != BN_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 0.0;
    }
    t0 = bn_time_s();
    for (i = 0; i < n; i++) {
        make_tokens(tok, 1, vocab, (uint32_t)i * 31u + 5u);
        if (bn_eval(ctx, 0, tok, 1, &err) != BN_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 0.0;
        }
    }
    dt = bn_time_s() - t0;
    return n / dt;
}

/* Decode speed at a long context: prefill n_prefill tokens (in n_batch
   chunks, not timed), then time n single-token steps. Attention then reads
   n_prefill positions of K and V per layer and step. */
static double bench_tg_at(bn_context *ctx, int n_prefill, int n, int vocab) {
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * (size_t)n_prefill);
    bn_error err;
    double t0, dt;
    int i;
    bn_context_reset(ctx);
    make_tokens(tok, n_prefill, vocab, 11);
    if (!tok || bn_eval(ctx, 0, tok, n_prefill, &err) != BN_OK) {
        fprintf(stderr, "bench: prefill failed\n");
        free(tok);
        return 0.0;
    }
    t0 = bn_time_s();
    for (i = 0; i < n; i++) {
        make_tokens(tok, 1, vocab, (uint32_t)i * 17u + 9u);
        if (bn_eval(ctx, 0, tok, 1, &err) != BN_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            free(tok);
            return 0.0;
        }
    }
    dt = bn_time_s() - t0;
    free(tok);
    return n / dt;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench [MODEL_DIR] [-t THREADS] [--layout i2|tq1] [--head bf16|f16|f32|i8] [--kv f32|f16] [--quick]\n"
                    "       bench [MODEL_DIR] [-t THREADS] --ctx N [--kv f32|f16]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *dir = DEFAULT_MODEL;
    bn_model_params mp = bn_model_default_params();
    bn_context_params cp = bn_context_default_params();
    bn_model *model = NULL;
    bn_context *ctx = NULL, *ctx1 = NULL;
    bn_error err;
    const bn_config *c;
    size_t mapped = 0, allocated = 0, wbytes, kv_bytes;
    double t0, load_s, pp128 = 0, pp512 = 0, tg = 0, tg1 = 0, pp128_1 = 0, rss, bw, bw1, roof;
    int i, n_threads = 0, quick = 0, long_ctx = 0;
    char path[1024];

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) long_ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc) {
            i++;
            cp.kv_type = !strcmp(argv[i], "f16") ? BN_FTYPE_F16 : BN_FTYPE_F32;
        }
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) {
            i++;
            mp.layout = !strcmp(argv[i], "tq1") ? BN_TLAYOUT_TQ1 : !strcmp(argv[i], "i2") ? BN_TLAYOUT_I2 : BN_TLAYOUT_DEFAULT;
        } else if (!strcmp(argv[i], "--head") && i + 1 < argc) {
            i++;
            mp.head_type_set = 1;
            mp.head_type = !strcmp(argv[i], "f32") ? BN_FTYPE_F32 : !strcmp(argv[i], "f16") ? BN_FTYPE_F16
                         : !strcmp(argv[i], "i8") ? BN_FTYPE_I8 : BN_FTYPE_BF16;
        } else if (argv[i][0] == '-') usage();
        else dir = argv[i];
    }

    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!file_exists(path)) {
        if (strcmp(dir, DEFAULT_MODEL) != 0) {
            fprintf(stderr, "bench: %s not found\n", path);
            return 1;
        }
        printf("bench: generating the 2B4T-shaped synthetic model in %s (once)\n", dir);
        fflush(stdout);
        if (system("python3 tools/gen_synthetic.py " DEFAULT_MODEL) != 0) return 1;
    }

    t0 = bn_time_s();
    if (bn_model_load(&model, dir, &mp, &err) != BN_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    load_s = bn_time_s() - t0;
    c = bn_model_config(model);
    bn_model_memory(model, &mapped, &allocated);
    wbytes = decode_weight_bytes(model);

    cp.n_threads = n_threads;
    if (long_ctx > 0) {
        /* decode at a long context only: prefill long_ctx tokens, time 32 steps */
        double tgl;
        cp.n_ctx = long_ctx + 64;
        cp.n_batch = 256;
        if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            bn_model_free(model);
            return 1;
        }
        bench_tg_at(ctx, 8, 4, c->vocab_size); /* warm-up */
        tgl = bench_tg_at(ctx, long_ctx, 32, c->vocab_size);
        printf("tg32 @ %d  %.2f tok/s (%d threads, kernel %s, KV cache %s)\n", long_ctx, tgl,
               n_threads > 0 ? n_threads : bn_cpu_count(), bn_kernel_name(bn_context_get_params(ctx)->kernel),
               cp.kv_type == BN_FTYPE_F16 ? "f16" : "f32");
        bn_context_free(ctx);
        bn_model_free(model);
        return 0;
    }
    cp.n_ctx = quick ? 256 : 640;
    cp.n_batch = quick ? 128 : 512;
    cp.kernel = bn_kernel_detect();
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        bn_model_free(model);
        return 1;
    }
    kv_bytes = (size_t)2 * c->n_layers * cp.n_ctx * c->n_kv_heads * c->head_dim * (cp.kv_type == BN_FTYPE_F16 ? 2 : 4);

    printf("model      %s: %d layers, hidden %d, ffn %d, vocab %d, loaded in %.1f s\n", dir, c->n_layers,
           c->hidden_size, c->intermediate_size, c->vocab_size, load_s);
    printf("layout     %s, lm_head %s, kernel %s, threads %d\n",
           model->layers[0].wq.layout == BN_TLAYOUT_TQ1 ? "tq1" : "i2",
           model->lm_head.type == BN_FTYPE_F32 ? "f32" : model->lm_head.type == BN_FTYPE_F16 ? "f16"
           : model->lm_head.type == BN_FTYPE_I8 ? "i8" : "bf16",
           bn_kernel_name(cp.kernel), bn_pool_size(NULL) * 0 + (n_threads > 0 ? n_threads : bn_cpu_count()));
    printf("memory     mapped %.1f MB, allocated %.1f MB, KV cache %.1f MB (%s, n_ctx %d)\n", mapped / 1e6,
           allocated / 1e6, kv_bytes / 1e6, cp.kv_type == BN_FTYPE_F16 ? "f16" : "f32", cp.n_ctx);
    printf("weights    %.1f MB read per decoded token (ternary linears + lm_head)\n", wbytes / 1e6);
    fflush(stdout);

    bench_pp(ctx, 8, c->vocab_size); /* warm-up: first touch of the mapped lm_head, KV cache, scratch */
    pp128 = bench_pp(ctx, 128, c->vocab_size);
    printf("pp128      %.2f tok/s\n", pp128);
    fflush(stdout);
    if (!quick) {
        pp512 = bench_pp(ctx, 512, c->vocab_size);
        printf("pp512      %.2f tok/s\n", pp512);
        fflush(stdout);
    }
    tg = bench_tg(ctx, quick ? 32 : 128, c->vocab_size);
    printf("tg%-3d      %.2f tok/s (%d threads), %.2f GB/s of weights\n", quick ? 32 : 128, tg,
           n_threads > 0 ? n_threads : bn_cpu_count(), tg * wbytes / 1e9);
    fflush(stdout);
    bn_context_free(ctx);

    cp.n_threads = 1;
    if (bn_context_new(&ctx1, model, &cp, &err) == BN_OK) {
        tg1 = bench_tg(ctx1, quick ? 16 : 64, c->vocab_size);
        printf("tg (1 thr) %.2f tok/s, %.2f GB/s of weights\n", tg1, tg1 * wbytes / 1e9);
        if (!quick) {
            pp128_1 = bench_pp(ctx1, 128, c->vocab_size);
            printf("pp128 (1)  %.2f tok/s\n", pp128_1);
        }
        fflush(stdout);
        bn_context_free(ctx1);
    }
    rss = peak_rss_mb();
    /* The budget is the model's files + KV cache + 64 MB. The load converts
       the packed weights (and copies a big lm_head into huge pages) and
       drops the file pages it no longer reads, so what stays is about one
       copy of the model. */
    printf("peak RSS   %.1f MB (model files %.1f MB, allocated %.1f MB, KV %.1f MB; budget: files + KV + 64 MB = %.1f MB)\n",
           rss, mapped / 1e6, allocated / 1e6, kv_bytes / 1e6, (mapped + kv_bytes) / 1e6 + 64.0);
    bn_model_free(model);

    bw = measure_bandwidth(n_threads);
    bw1 = measure_bandwidth(1);
    roof = bw * 1e9 / (double)wbytes;
    printf("bandwidth  %.2f GB/s streaming read (%d threads), %.2f GB/s (1 thread)\n", bw,
           n_threads > 0 ? n_threads : bn_cpu_count(), bw1);
    printf("roofline   %.2f tok/s = %.2f GB/s / %.1f MB per token; decode reaches %.1f %% of it\n", roof, bw,
           wbytes / 1e6, 100.0 * tg / roof);
    printf("roofline1  %.2f tok/s at 1 thread; decode reaches %.1f %%\n", bw1 * 1e9 / (double)wbytes,
           100.0 * tg1 / (bw1 * 1e9 / (double)wbytes));
    (void)pp512;
    return 0;
}
