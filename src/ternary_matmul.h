#ifndef BN_PART_TERNARY_MATMUL_H
#define BN_PART_TERNARY_MATMUL_H
/* Matrices the transformer multiplies by, and the kernels that do it.

   A ternary linear layer y = W x (W is rows x cols, values in {-1, 0, +1}
   times one float scale) is computed the BitNet b1.58 way:
     1. the input x of each token is quantized to int8 with its own scale
        a = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x * a), -128, 127)
     2. the integer dot products sum_c W[r][c] * q[c] are exact (int32)
     3. y[r] = dot * scale / a
   The weights live in memory in a layout made for the kernels (bn_tlayout),
   built once at load. The scalar kernel is the reference: every SIMD kernel
   must give bit-identical integer results.

   Float matrices (embeddings, lm_head) are bn_fmat: f32, bf16, f16 or int8
   with one scale per row. */

typedef enum bn_tlayout {
    BN_TLAYOUT_DEFAULT = 0, /* the layout chosen by measurement (see README) */
    BN_TLAYOUT_I2,          /* 2 bits per weight */
    BN_TLAYOUT_TQ1          /* 5 weights per byte in base 3: ~1.6 bits per weight */
} bn_tlayout;

typedef enum bn_kernel {
    BN_KERNEL_AUTO = 0, /* best for this CPU, detected at run time */
    BN_KERNEL_SCALAR,
    BN_KERNEL_AVX2,
    BN_KERNEL_AVX512, /* AVX-512 BW (+VNNI where present) */
    BN_KERNEL_NEON,
    BN_KERNEL_NEON_DOT,
    BN_KERNEL_AVX_VNNI /* AVX2 + AVX-VNNI (256-bit vpdpbusd: client CPUs without AVX-512) */
} bn_kernel;

typedef struct bn_tmat {
    int rows, cols;    /* rows = output features, cols = input features */
    bn_tlayout layout; /* never BN_TLAYOUT_DEFAULT once packed */
    float scale;       /* effective weight = ternary value * scale */
    uint8_t *data;     /* packed weights (64-byte aligned inside `owned`) */
    size_t nbytes;     /* bytes of packed weights: rows * row bytes */
    void *owned;       /* the allocation, freed by bn_tmat_free */
} bn_tmat;

typedef enum bn_ftype { BN_FTYPE_F32 = 0, BN_FTYPE_BF16, BN_FTYPE_F16, BN_FTYPE_I8 } bn_ftype;

typedef struct bn_fmat {
    int rows, cols;
    bn_ftype type;
    const void *data;       /* rows x cols elements of `type`, row-major */
    const float *row_scale; /* BN_FTYPE_I8 only: value = data * row_scale[row] */
    void *owned;            /* memory to BN_FREE with the matrix (NULL when data is mapped) */
    float *owned_scale;
} bn_fmat;

BN_EXTERN_C_BEGIN
/* Pack a row-major rows x cols matrix of ternary values (-1, 0, 1). */
BN_API bn_status bn_tmat_pack(bn_tmat *m, const int8_t *values, int rows, int cols, float scale,
                              bn_tlayout layout, bn_error *err);
BN_API void bn_tmat_free(bn_tmat *m);
/* The ternary value at (r, c), for tests and conversions. */
BN_API int bn_tmat_get(const bn_tmat *m, int r, int c);

/* Quantize one token's n activations as HF's BitLinear does; returns the scale a. */
BN_API float bn_quantize_act(const float *x, int n, int8_t *q);
/* Ternarize a weight tensor of n values as HF's online AutoBitLinear (and
   WeightQuant in training) does: s = 1 / max(mean|W|, 1e-5),
   q = clamp(round_half_even(W * s), -1, 1); returns s (W ~ q / s). Inference
   and training both call this, so a trained model means the same at load. */
BN_API float bn_ternarize(const float *w, size_t n, int8_t *q);

/* out[t * m->rows + r] = sum_c W[r][c] * xq[t * m->cols + c], exact, for t < n_tokens. */
BN_API void bn_tmat_matmul_i32(const bn_tmat *m, const int8_t *xq, int n_tokens, int32_t *out, bn_pool *pool,
                               bn_kernel kernel);
/* y[t * m->rows + r] = dot * m->scale / act_scale[t]. */
BN_API void bn_tmat_matmul(const bn_tmat *m, const int8_t *xq, const float *act_scale, int n_tokens, float *y,
                           bn_pool *pool, bn_kernel kernel);
/* bn_tmat_matmul of n_mats matrices that read the same input (q, k and v;
   gate and up), in one run of the pool: ys[i] gets matrix i's output. The
   threads wake once instead of n times and split the rows of all of them. */
BN_API void bn_tmat_matmul_n(const bn_tmat *const *ms, int n_mats, const int8_t *xq, const float *act_scale,
                             int n_tokens, float *const *ys, bn_pool *pool, bn_kernel kernel);

/* y[t * m->rows + r] = sum_c M[r][c] * x[t * m->cols + c] in float (the
   summation order, and so the rounding, depends on the kernel). */
BN_API void bn_fmat_matmul(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool);
/* The same with a chosen kernel (keep bn_kernel_detect()'s answer: AUTO asks the CPU on each call). */
BN_API void bn_fmat_matmul_kernel(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool,
                                  bn_kernel kernel);
/* Row r as floats (embedding lookup). */
BN_API void bn_fmat_row(const bn_fmat *m, int r, float *out);
BN_API void bn_fmat_free(bn_fmat *m);

BN_API bn_kernel bn_kernel_detect(void); /* best kernel this CPU (and this build) supports */
BN_API const char *bn_kernel_name(bn_kernel kernel);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ---- Weight layouts ------------------------------------------------------
   Both layouts cut each row into blocks along K. A block is 64 bytes and
   byte j of a block holds one weight from each 64-wide stripe of it: weight
   64*k + j of the block is "digit" k of byte j. So one SIMD load of 64 (or 32
   or 16) bytes and one shift/mask (I2) or compare (TQ1) per digit gives
   weights for 64 (32, 16) consecutive columns, which line up with a plain
   load of the activations.
   Weights are stored as codes = value + 1 in {0, 1, 2}. Kernels compute
   sum code * x with unsigned x signed byte products (maddubs / vpdpbusd /
   sdot) and subtract sum x once per token.

   BN_TLAYOUT_I2:  256 weights per block, 2 bits each: digit k of byte j is
                   bits 2k..2k+1 (k = 0..3).
   BN_TLAYOUT_TQ1: 320 weights per block, 5 weights per byte (1.6 bits): the
                   base-3 number v = sum_k code_k * 3^(4-k) (k = 0..4) is
                   stored as q = ceil(v * 256 / 243), so that digit k is
                   ((q * 3^k mod 256) * 3) >> 8: multiplications and
                   compares, no division (the trick of llama.cpp's TQ1_0);
                   and v = (q * 243) >> 8.
   Columns past `cols` in the last block hold code 1 (weight 0); rows are
   cols_padded / block_weights * 64 bytes apart. */

#define BN__TBLOCK_BYTES 64

static int bn__tlayout_block_weights(bn_tlayout layout) { return layout == BN_TLAYOUT_TQ1 ? 320 : 256; }
static int bn__tmat_blocks(const bn_tmat *m) {
    int bw = bn__tlayout_block_weights(m->layout);
    return (m->cols + bw - 1) / bw;
}
/* Bytes of one packed row of `cols` weights (whole blocks). */
static size_t bn__packed_row_bytes(int cols, bn_tlayout layout) {
    int bw = bn__tlayout_block_weights(layout);
    return (size_t)((cols + bw - 1) / bw) * BN__TBLOCK_BYTES;
}
static size_t bn__tmat_row_bytes(const bn_tmat *m) { return bn__packed_row_bytes(m->cols, m->layout); }

/* The code (value + 1) of weight `i` of a block. */
static int bn__tblock_code(bn_tlayout layout, const uint8_t *block, int i) {
    int j = i % 64, k = i / 64;
    if (layout == BN_TLAYOUT_TQ1) {
        int v = (block[j] * 243) >> 8, d;
        for (d = 4; d > k; d--) v /= 3;
        return v % 3;
    }
    return (block[j] >> (2 * k)) & 3;
}

/* One block from the block_weights ternary values at v (loops the compiler can vectorize). */
static void bn__tblock_encode(bn_tlayout layout, uint8_t *block, const int8_t *v) {
    int j;
    if (layout == BN_TLAYOUT_TQ1) {
        for (j = 0; j < 64; j++) {
            int n = (v[j] + 1) * 81 + (v[64 + j] + 1) * 27 + (v[128 + j] + 1) * 9 + (v[192 + j] + 1) * 3 + (v[256 + j] + 1);
            block[j] = (uint8_t)((n * 256 + 242) / 243);
        }
    } else {
        for (j = 0; j < 64; j++)
            block[j] = (uint8_t)((v[j] + 1) | (v[64 + j] + 1) << 2 | (v[128 + j] + 1) << 4 | (v[192 + j] + 1) << 6);
    }
}

#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(BITNET_NO_HUGE_PAGES)
#define BN__HUGE_PAGES 1
#endif

/* Memory for packed weights: 64-byte aligned, so that no SIMD load straddles
   two cache lines. On Linux, blocks of 2 MB or more are also 2 MB aligned
   and marked for transparent huge pages: a decode step streams every weight
   once, and with 4 KB pages that is a TLB miss and a stop of the hardware
   prefetcher every 4 KB (measured: decode 25% faster on 2B4T shapes). A model
   packs all its matrices into one such block (bn__tarena). madvise needs
   _DEFAULT_SOURCE or _GNU_SOURCE defined before the first #include of the
   translation unit; without them, or with BITNET_NO_HUGE_PAGES, weights get
   ordinary pages. */
static uint8_t *bn__alloc_weights(size_t n, void **owned) {
    size_t align = 64;
    uint8_t *p;
#if defined(BN__HUGE_PAGES)
    const size_t huge = (size_t)2 << 20;
    if (n >= huge) align = huge;
#endif
    *owned = BN_MALLOC(n + align - 1);
    if (!*owned) return NULL;
    p = (uint8_t *)*owned + (align - (uintptr_t)*owned % align) % align;
#if defined(BN__HUGE_PAGES)
    if (align == huge) madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advice: failure changes nothing */
#endif
    return p;
}

/* Bytes of one packed matrix (a multiple of 64). */
static size_t bn__tmat_packed_bytes(int rows, int cols, bn_tlayout layout) {
    return (size_t)rows * bn__packed_row_bytes(cols, layout == BN_TLAYOUT_DEFAULT ? BN_TLAYOUT_I2 : layout);
}

/* One allocation that many matrices are packed into, in order. */
typedef struct bn__tarena {
    uint8_t *base;
    size_t size, used;
    void *owned;
} bn__tarena;

static bn_status bn__tarena_init(bn__tarena *a, size_t size, bn_error *err) {
    memset(a, 0, sizeof *a);
    a->base = bn__alloc_weights(size ? size : 64, &a->owned);
    a->size = size;
    if (!a->base) return bn_errorf(err, BN_ERR_NOMEM, "out of memory for %lu MB of packed weights", (unsigned long)(size >> 20));
    return BN_OK;
}

/* bn_tmat_pack into the next bytes of `arena` (not owned by m), or into memory of its own (arena NULL). */
static bn_status bn__tmat_pack_in(bn_tmat *m, const int8_t *values, int rows, int cols, float scale,
                                  bn_tlayout layout, bn__tarena *arena, bn_error *err) {
    int8_t last[320]; /* the last, partial block of a row, padded with zeros */
    size_t rb;
    int r, b, c, nfull, bw;
    memset(m, 0, sizeof *m);
    if (rows <= 0 || cols <= 0) return bn_errorf(err, BN_ERR_ARG, "bn_tmat_pack: bad shape %d x %d", rows, cols);
    if (layout == BN_TLAYOUT_DEFAULT) layout = BN_TLAYOUT_I2;
    if (layout != BN_TLAYOUT_I2 && layout != BN_TLAYOUT_TQ1)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "bn_tmat_pack: layout %d not available", (int)layout);
    m->rows = rows;
    m->cols = cols;
    m->layout = layout;
    m->scale = scale;
    bw = bn__tlayout_block_weights(layout);
    nfull = cols / bw;
    rb = bn__tmat_row_bytes(m);
    m->nbytes = rb * (size_t)rows;
    if (arena && arena->size - arena->used >= m->nbytes) {
        m->data = arena->base + arena->used;
        arena->used += m->nbytes;
    } else {
        m->data = bn__alloc_weights(m->nbytes, &m->owned);
    }
    if (!m->data) {
        memset(m, 0, sizeof *m);
        return bn_errorf(err, BN_ERR_NOMEM, "bn_tmat_pack: out of memory for %d x %d", rows, cols);
    }
    for (r = 0; r < rows; r++) {
        const int8_t *row = values + (size_t)r * cols;
        uint8_t *dst = m->data + (size_t)r * rb;
        int bad = 0;
        for (c = 0; c < cols; c++) bad |= (uint8_t)(row[c] + 1) > 2;
        if (bad) {
            for (c = 0; (uint8_t)(row[c] + 1) <= 2; c++) {
            }
            bn_errorf(err, BN_ERR_ARG, "bn_tmat_pack: value %d at (%d, %d) is not ternary", row[c], r, c);
            bn_tmat_free(m);
            return BN_ERR_ARG;
        }
        for (b = 0; b < nfull; b++) bn__tblock_encode(layout, dst + (size_t)b * BN__TBLOCK_BYTES, row + (size_t)b * bw);
        if (nfull * bw < cols) {
            memset(last, 0, sizeof last);
            memcpy(last, row + (size_t)nfull * bw, (size_t)(cols - nfull * bw));
            bn__tblock_encode(layout, dst + (size_t)nfull * BN__TBLOCK_BYTES, last);
        }
    }
    return BN_OK;
}

BN_API bn_status bn_tmat_pack(bn_tmat *m, const int8_t *values, int rows, int cols, float scale,
                              bn_tlayout layout, bn_error *err) {
    return bn__tmat_pack_in(m, values, rows, cols, scale, layout, NULL, err);
}

BN_API void bn_tmat_free(bn_tmat *m) {
    if (!m) return;
    BN_FREE(m->owned);
    memset(m, 0, sizeof *m);
}

BN_API int bn_tmat_get(const bn_tmat *m, int r, int c) {
    int bw = bn__tlayout_block_weights(m->layout);
    const uint8_t *block = m->data + (size_t)r * bn__tmat_row_bytes(m) + (size_t)(c / bw) * BN__TBLOCK_BYTES;
    return bn__tblock_code(m->layout, block, c % bw) - 1;
}

BN_API float bn_quantize_act(const float *x, int n, int8_t *q) {
    float amax = 0.0f, a;
    int i;
    for (i = 0; i < n; i++) amax = BN_MAX(amax, fabsf(x[i]));
    a = 127.0f / BN_MAX(amax, 1e-5f);
    for (i = 0; i < n; i++) {
        float v = rintf(x[i] * a); /* round half to even, as torch.round */
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    return a;
}

BN_API float bn_ternarize(const float *w, size_t n, int8_t *q) {
    double sum = 0.0;
    float s;
    size_t i;
    for (i = 0; i < n; i++) sum += fabs((double)w[i]);
    s = 1.0f / BN_MAX((float)(n ? sum / (double)n : 0.0), 1e-5f);
    for (i = 0; i < n; i++) {
        float v = rintf(w[i] * s); /* round half to even, as torch.round */
        q[i] = (int8_t)(v > 1.0f ? 1 : v < -1.0f ? -1 : v);
    }
    return s;
}

/* ---- Kernels -------------------------------------------------------------
   A kernel computes, for nr rows (nr <= BN__RTILE) that start at w and lie
   row_bytes apart, and nt tokens (nt <= BN__TTILE):
     out[r * nt + t] = sum over nblocks blocks of code * x[t][...]
   where the activations of block b start at x[t] + b * block_weights. Each
   row's blocks are unpacked once for a tile of tokens (the GEMM case); with
   one token it is a GEMV that streams the weights once, and the rows of a
   call share the horizontal sums at the end. */
#define BN__RTILE 4
#define BN__TTILE 8
typedef void (*bn__tdot_fn)(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                            int32_t *out);

/* The scalar kernel: the reference every SIMD kernel must match exactly. */
static void bn__tdot_scalar(bn_tlayout layout, const uint8_t *w, size_t row_bytes, int nr, int nblocks,
                            const int8_t *const *x, int nt, int32_t *out) {
    int bw = bn__tlayout_block_weights(layout), r, t, b, i;
    for (r = 0; r < nr; r++)
        for (t = 0; t < nt; t++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            int32_t acc = 0;
            for (b = 0; b < nblocks; b++)
                for (i = 0; i < bw; i++) acc += bn__tblock_code(layout, row + (size_t)b * 64, i) * x[t][b * bw + i];
            out[r * nt + t] = acc;
        }
}
static void bn__tdot_i2_scalar(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x, int nt,
                               int32_t *out) {
    bn__tdot_scalar(BN_TLAYOUT_I2, w, row_bytes, nr, nblocks, x, nt, out);
}
static void bn__tdot_tq1_scalar(const uint8_t *w, size_t row_bytes, int nr, int nblocks, const int8_t *const *x,
                                int nt, int32_t *out) {
    bn__tdot_scalar(BN_TLAYOUT_TQ1, w, row_bytes, nr, nblocks, x, nt, out);
}

/* Defined in ternary_simd.h: the SIMD kernel for (kernel, layout), or NULL. */
static bn__tdot_fn bn__tdot_simd(bn_kernel kernel, bn_tlayout layout);

static bn__tdot_fn bn__tdot_select(bn_kernel kernel, bn_tlayout layout) {
    bn__tdot_fn f;
    if (kernel == BN_KERNEL_AUTO) kernel = bn_kernel_detect();
    f = bn__tdot_simd(kernel, layout);
    if (f) return f;
    return layout == BN_TLAYOUT_TQ1 ? bn__tdot_tq1_scalar : bn__tdot_i2_scalar;
}

/* Up to BN__MAX_FUSED matrices that read the same input, computed in one
   run of the pool (see bn_tmat_matmul_n). */
#define BN__MAX_FUSED 4
typedef struct bn__tmatmul_job {
    const bn_tmat *m[BN__MAX_FUSED];
    int n_mats;
    const int8_t *xq;
    int n_tokens;
    bn__tdot_fn dot;
    int32_t *out_i32;                 /* either this (one matrix) ... */
    float *out_f32[BN__MAX_FUSED];    /* ... or these, with act_scale */
    const float *act_scale;
} bn__tmatmul_job;

/* One tile of up to BN__TTILE tokens, as the kernels want them: pointers to
   each token's activations, their sums (codes are value + 1, so the kernels'
   sums exceed the true ones by sum x), and a zero-padded copy of the tail
   that the last, partial block of a row reads, so kernels never read past
   `cols`. */
typedef struct bn__ttile {
    int nt;
    const int8_t *x[BN__TTILE], *tail[BN__TTILE];
    int32_t sumx[BN__TTILE];
    int8_t tail_buf[BN__TTILE][320];
} bn__ttile;

static void bn__ttile_init(bn__ttile *tile, const bn_tmat *m, const int8_t *xq, int t0, int nt, int nfull, int bw) {
    int t, c;
    tile->nt = nt;
    for (t = 0; t < nt; t++) {
        const int8_t *x = xq + (size_t)(t0 + t) * m->cols;
        int32_t s = 0;
        for (c = 0; c < m->cols; c++) s += x[c];
        tile->sumx[t] = s;
        tile->x[t] = x;
        if (nfull * bw < m->cols) {
            memset(tile->tail_buf[t], 0, sizeof tile->tail_buf[t]);
            memcpy(tile->tail_buf[t], x + (size_t)nfull * bw, (size_t)(m->cols - nfull * bw));
        }
        tile->tail[t] = tile->tail_buf[t];
    }
}

/* v[0..3] /= a, as four divisions in one instruction where the ISA's
   baseline has it (SSE2 on x86-64, NEON on aarch64): the same IEEE quotients
   as four scalar divisions, which would cost 10-20 % of a GEMV. */
#if !defined(BITNET_NO_SIMD) && (defined(__SSE2__) || defined(_M_X64))
#include <emmintrin.h>
static void bn__div4(float *v, float a) { _mm_storeu_ps(v, _mm_div_ps(_mm_loadu_ps(v), _mm_set1_ps(a))); }
#elif !defined(BITNET_NO_SIMD) && defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
static void bn__div4(float *v, float a) { vst1q_f32(v, vdivq_f32(vld1q_f32(v), vdupq_n_f32(a))); }
#else
static void bn__div4(float *v, float a) {
    int i;
    for (i = 0; i < 4; i++) v[i] /= a;
}
#endif

static int bn__tmat_row_groups(const bn_tmat *m) { return (m->rows + BN__RTILE - 1) / BN__RTILE; }

/* Rows [lo, hi) of matrix `mi` of the job against one tile of tokens (t0 is
   the tile's first token). */
static void bn__tmatmul_rows(const bn__tmatmul_job *job, int mi, const bn__ttile *tile, int t0, int lo, int hi) {
    const bn_tmat *m = job->m[mi];
    int bw = bn__tlayout_block_weights(m->layout), nblocks = bn__tmat_blocks(m);
    int nfull = m->cols / bw, has_tail = nfull < nblocks, nt = tile->nt, t, r, nr, i;
    size_t rb = bn__tmat_row_bytes(m);
    int32_t dots[BN__RTILE * BN__TTILE], tdots[BN__RTILE * BN__TTILE];
    for (r = lo; r < hi; r += nr) {
        const uint8_t *w = m->data + (size_t)r * rb;
        nr = BN_MIN(hi - r, BN__RTILE);
        if (nfull) job->dot(w, rb, nr, nfull, tile->x, nt, dots);
        else memset(dots, 0, sizeof dots);
        if (has_tail) {
            job->dot(w + (size_t)nfull * BN__TBLOCK_BYTES, rb, nr, 1, tile->tail, nt, tdots);
            for (i = 0; i < nr * nt; i++) dots[i] += tdots[i];
        }
        for (t = 0; t < nt; t++) {
            size_t o = (size_t)(t0 + t) * m->rows + r;
            if (job->out_i32) {
                for (i = 0; i < nr; i++) job->out_i32[o + i] = dots[i * nt + t] - tile->sumx[t];
            } else {
                float v[BN__RTILE];
                for (i = 0; i < nr; i++) v[i] = (float)(dots[i * nt + t] - tile->sumx[t]) * m->scale;
                bn__div4(v, job->act_scale[t0 + t]);
                memcpy(job->out_f32[mi] + o, v, sizeof(float) * (size_t)nr);
            }
        }
    }
}

/* One thread: its share of the rows of all the job's matrices, counted in
   whole groups of BN__RTILE, for every token, BN__TTILE tokens at a time: a
   tile's activations stay in L1 while the rows stream past. */
static void bn__tmatmul_worker(void *arg, int ith, int nth) {
    const bn__tmatmul_job *job = (const bn__tmatmul_job *)arg;
    const bn_tmat *m0 = job->m[0];
    int bw = bn__tlayout_block_weights(m0->layout), nfull = m0->cols / bw, total = 0, glo, ghi, t0, mi, g;
    bn__ttile tile;
    for (mi = 0; mi < job->n_mats; mi++) total += bn__tmat_row_groups(job->m[mi]);
    bn_split_range(total, ith, nth, &glo, &ghi);
    if (glo >= ghi) return;
    for (t0 = 0; t0 < job->n_tokens; t0 += tile.nt) {
        bn__ttile_init(&tile, m0, job->xq, t0, BN_MIN(job->n_tokens - t0, BN__TTILE), nfull, bw);
        for (mi = 0, g = 0; mi < job->n_mats; g += bn__tmat_row_groups(job->m[mi]), mi++) {
            int lo = BN_MAX(glo - g, 0) * BN__RTILE, hi = BN_MIN(ghi - g, bn__tmat_row_groups(job->m[mi])) * BN__RTILE;
            if (lo < hi) bn__tmatmul_rows(job, mi, &tile, t0, lo, BN_MIN(hi, job->m[mi]->rows));
        }
    }
}

static void bn__tmatmul_run(const bn_tmat *const *ms, int n_mats, const int8_t *xq, int n_tokens, int32_t *out_i32,
                            float *const *out_f32, const float *act_scale, bn_pool *pool, bn_kernel kernel) {
    bn__tmatmul_job job;
    int i;
    memset(&job, 0, sizeof job);
    job.n_mats = n_mats;
    for (i = 0; i < n_mats; i++) {
        job.m[i] = ms[i];
        if (out_f32) job.out_f32[i] = out_f32[i];
    }
    job.xq = xq;
    job.n_tokens = n_tokens;
    job.dot = bn__tdot_select(kernel, ms[0]->layout);
    job.out_i32 = out_i32;
    job.act_scale = act_scale;
    if (n_tokens <= 0) return;
    bn_pool_run(pool, bn__tmatmul_worker, &job);
}

BN_API void bn_tmat_matmul_i32(const bn_tmat *m, const int8_t *xq, int n_tokens, int32_t *out, bn_pool *pool,
                               bn_kernel kernel) {
    bn__tmatmul_run(&m, 1, xq, n_tokens, out, NULL, NULL, pool, kernel);
}

BN_API void bn_tmat_matmul(const bn_tmat *m, const int8_t *xq, const float *act_scale, int n_tokens, float *y,
                           bn_pool *pool, bn_kernel kernel) {
    bn__tmatmul_run(&m, 1, xq, n_tokens, NULL, &y, act_scale, pool, kernel);
}

BN_API void bn_tmat_matmul_n(const bn_tmat *const *ms, int n_mats, const int8_t *xq, const float *act_scale,
                             int n_tokens, float *const *ys, bn_pool *pool, bn_kernel kernel) {
    int i, same = n_mats <= BN__MAX_FUSED;
    for (i = 1; i < n_mats && same; i++) same = ms[i]->cols == ms[0]->cols && ms[i]->layout == ms[0]->layout;
    if (same && n_mats > 0) {
        bn__tmatmul_run(ms, n_mats, xq, n_tokens, NULL, ys, act_scale, pool, kernel);
        return;
    }
    for (i = 0; i < n_mats; i++) bn_tmat_matmul(ms[i], xq, act_scale, n_tokens, ys[i], pool, kernel);
}

static float bn__fmat_at(const bn_fmat *m, size_t r, size_t c) {
    size_t i = r * (size_t)m->cols + c;
    switch (m->type) {
    case BN_FTYPE_F32: return ((const float *)m->data)[i];
    case BN_FTYPE_BF16: return bn_bf16_to_f32(((const uint16_t *)m->data)[i]);
    case BN_FTYPE_F16: return bn_f16_to_f32(((const uint16_t *)m->data)[i]);
    case BN_FTYPE_I8: return (float)((const int8_t *)m->data)[i] * m->row_scale[r];
    }
    return 0.0f;
}

/* ---- Float matrices ------------------------------------------------------
   A float kernel computes out[t] = sum_c row[c] * x[t][c] for one row (of
   type `type`, without the int8 row scale) and nt = 1 or BN__FTILE tokens. */
#define BN__FTILE 4
typedef void (*bn__fdot_fn)(const void *row, bn_ftype type, int cols, const float *const *x, int nt, float *out);

static void bn__fdot_scalar(const void *row, bn_ftype type, int cols, const float *const *x, int nt, float *out) {
    int t, c;
    for (t = 0; t < nt; t++) {
        float acc = 0.0f;
        for (c = 0; c < cols; c++) {
            float w;
            switch (type) {
            case BN_FTYPE_F32: w = ((const float *)row)[c]; break;
            case BN_FTYPE_BF16: w = bn_bf16_to_f32(((const uint16_t *)row)[c]); break;
            case BN_FTYPE_F16: w = bn_f16_to_f32(((const uint16_t *)row)[c]); break;
            default: w = (float)((const int8_t *)row)[c]; break;
            }
            acc += w * x[t][c];
        }
        out[t] = acc;
    }
}

/* Defined in ternary_simd.h: the SIMD float kernel for `kernel`, or NULL. */
static bn__fdot_fn bn__fdot_simd(bn_kernel kernel);

static size_t bn__ftype_size(bn_ftype type) { return type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2; }

typedef struct bn__fmatmul_job {
    const bn_fmat *m;
    const float *x;
    int n_tokens;
    float *y;
    bn__fdot_fn dot;
} bn__fmatmul_job;

/* One thread: rows [lo, hi) for every token. The rows go in chunks of
   BN__FCHUNK (a few dozen KB, which stay in L2) and each chunk meets every
   tile of BN__FTILE tokens, so the matrix is read from memory once however
   many tokens there are, and each row is converted once per tile. */
#define BN__FCHUNK 32
static void bn__fmatmul_worker(void *arg, int ith, int nth) {
    const bn__fmatmul_job *job = (const bn__fmatmul_job *)arg;
    const bn_fmat *m = job->m;
    size_t rb = bn__ftype_size(m->type) * (size_t)m->cols;
    const float *xs[BN__FTILE];
    float dots[BN__FTILE];
    int lo, hi, c0, c1, t0, nt, t, r;
    bn_split_range(m->rows, ith, nth, &lo, &hi);
    for (c0 = lo; c0 < hi; c0 = c1) {
        c1 = BN_MIN(c0 + BN__FCHUNK, hi);
        for (t0 = 0; t0 < job->n_tokens; t0 += nt) {
            nt = job->n_tokens - t0 >= BN__FTILE ? BN__FTILE : 1;
            for (t = 0; t < nt; t++) xs[t] = job->x + (size_t)(t0 + t) * m->cols;
            for (r = c0; r < c1; r++) {
                float s = m->type == BN_FTYPE_I8 ? m->row_scale[r] : 1.0f;
                job->dot((const uint8_t *)m->data + (size_t)r * rb, m->type, m->cols, xs, nt, dots);
                for (t = 0; t < nt; t++) job->y[(size_t)(t0 + t) * m->rows + r] = dots[t] * s;
            }
        }
    }
}

BN_API void bn_fmat_matmul_kernel(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool,
                                  bn_kernel kernel) {
    bn__fmatmul_job job;
    if (n_tokens <= 0) return;
    if (kernel == BN_KERNEL_AUTO) kernel = bn_kernel_detect();
    job.m = m;
    job.x = x;
    job.n_tokens = n_tokens;
    job.y = y;
    job.dot = bn__fdot_simd(kernel);
    if (!job.dot) job.dot = bn__fdot_scalar;
    bn_pool_run(pool, bn__fmatmul_worker, &job);
}

BN_API void bn_fmat_matmul(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool) {
    bn_fmat_matmul_kernel(m, x, n_tokens, y, pool, BN_KERNEL_AUTO);
}

BN_API void bn_fmat_row(const bn_fmat *m, int r, float *out) {
    int c;
    for (c = 0; c < m->cols; c++) out[c] = bn__fmat_at(m, (size_t)r, (size_t)c);
}

BN_API void bn_fmat_free(bn_fmat *m) {
    if (!m) return;
    BN_FREE(m->owned);
    BN_FREE(m->owned_scale);
    memset(m, 0, sizeof *m);
}

BN_API const char *bn_kernel_name(bn_kernel kernel) {
    switch (kernel) {
    case BN_KERNEL_AUTO: return "auto";
    case BN_KERNEL_SCALAR: return "scalar";
    case BN_KERNEL_AVX2: return "avx2";
    case BN_KERNEL_AVX512: return "avx512";
    case BN_KERNEL_NEON: return "neon";
    case BN_KERNEL_NEON_DOT: return "neon-dotprod";
    case BN_KERNEL_AVX_VNNI: return "avx-vnni";
    }
    return "unknown";
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TERNARY_MATMUL_H */
