#ifndef BN_PART_TERNARY_MATMUL_H
#define BN_PART_TERNARY_MATMUL_H
#include "base.h"
#include "threads.h"
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
   with one scale per row. The enums bn_tlayout, bn_ftype and bn_kernel, and
   the typedefs of bn_tmat and bn_fmat, are with the basics, since the model
   and context sections name them. */

struct bn_tmat {
    int rows, cols;    /* rows = output features, cols = input features */
    bn_tlayout layout; /* never BN_TLAYOUT_DEFAULT once packed */
    float scale;       /* effective weight = ternary value * scale */
    uint8_t *data;     /* packed weights (64-byte aligned inside `owned`) */
    size_t nbytes;     /* bytes of packed weights: rows * row bytes */
    void *owned;       /* the allocation, freed by bn_tmat_free */
};

/* A float matrix's elements are row-major, or tiled: rows in groups of
   BN_FMAT_TILE_ROWS, each group stored as blocks of BN_FMAT_TILE_COLS
   columns, a block holding its 16 columns of row 0, then of row 1, ... The
   kernels read a group's rows side by side, and tiled that is one stream
   from memory instead of six (as fast as one row at a time; four separate
   rows already cost 15 % on the 2B4T lm_head). Tiled matrices are padded with zeros
   to whole groups and blocks; the loader tiles embeddings and lm_head.
   BF16 blocks hold a row's 16 columns in the order 0, 8, 1, 9, ..., 7, 15:
   each 32-bit word has column j in its low half and j + 8 in its high half,
   so a shift and a mask turn the words into floats of columns 0-7 and 8-15
   (instead of widening every value; bn_fmat_row reads either layout). */
#define BN_FMAT_TILE_ROWS 6
#define BN_FMAT_TILE_COLS 16

struct bn_fmat {
    int rows, cols;
    bn_ftype type;
    const void *data;       /* elements of `type`, row-major or tiled */
    const float *row_scale; /* BN_FTYPE_I8 only: value = data * row_scale[row] */
    void *owned;            /* memory to BN_FREE with the matrix (NULL when data is not ours) */
    float *owned_scale;
    int tiled;              /* 1: the tiled layout above */
};

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
/* A tiled copy of a row-major matrix, owning its memory (free with bn_fmat_free). */
BN_API bn_status bn_fmat_tile(bn_fmat *dst, const bn_fmat *src, bn_error *err);
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

/* madvise, on Linux: transparent huge pages for the weights
   (bn__alloc_aligned) and dropping a file's pages once a load has converted
   them (bn__release_pages). glibc and musl declare madvise and its MADV_*
   values only with _DEFAULT_SOURCE or _GNU_SOURCE, which a strict -std=c99
   build lacks and which must come before a program's first #include; so when
   <sys/mman.h> hid them, they are declared here with the Linux ABI's values,
   and no feature-test macro is needed. */
#if defined(__linux__)
#include <sys/mman.h>
#define BN__MADVISE 1
#if defined(MADV_DONTNEED)
#define BN__MADV_DONTNEED MADV_DONTNEED
#else
#define BN__MADV_DONTNEED 4
extern int madvise(void *addr, size_t len, int advice);
#endif
#if defined(MADV_HUGEPAGE)
#define BN__MADV_HUGEPAGE MADV_HUGEPAGE
#else
#define BN__MADV_HUGEPAGE 14
#endif
#if !defined(BITNET_NO_HUGE_PAGES)
#define BN__HUGE_PAGES 1
#endif
#endif

/* Memory for SIMD operands (packed weights, float matrices, activations):
   64-byte aligned, so that no SIMD load straddles two cache lines (at 16
   bytes off a line the GEMV ran at 17 GB/s instead of 27). On Linux, blocks
   of 2 MB or more are also 2 MB aligned
   and marked for transparent huge pages: a decode step streams every weight
   once, and with 4 KB pages that is a TLB miss and a stop of the hardware
   prefetcher every 4 KB (measured: decode 25% faster on 2B4T shapes). A model
   packs all its matrices into one such block (bn__tarena). With
   BITNET_NO_HUGE_PAGES (or off Linux) weights get ordinary pages. Blocks of
   BN__PAGE_BYTES or more start on a page and end on one (the allocation is
   padded): a GPU with unified memory maps them without a copy
   (bn_backend_view; Metal wants whole 16 KB pages). Free *owned with
   BN_FREE. */
#define BN__PAGE_BYTES 16384 /* Apple silicon's page size, a multiple of 4 KB */
static uint8_t *bn__alloc_align(size_t n, size_t align, void **owned) {
    uint8_t *p;
#if defined(BN__HUGE_PAGES)
    const size_t huge = (size_t)2 << 20;
    if (n >= huge) align = huge;
#endif
    if (align >= BN__PAGE_BYTES) n = (n + BN__PAGE_BYTES - 1) / BN__PAGE_BYTES * BN__PAGE_BYTES;
    *owned = BN_MALLOC(n + align - 1);
    if (!*owned) return NULL;
    p = (uint8_t *)*owned + (align - (uintptr_t)*owned % align) % align;
#if defined(BN__HUGE_PAGES)
    if (align == huge) madvise(p, (n + huge - 1) / huge * huge, BN__MADV_HUGEPAGE); /* advice: failure changes nothing */
#endif
    return p;
}
static uint8_t *bn__alloc_aligned(size_t n, void **owned) {
    return bn__alloc_align(n, n >= BN__PAGE_BYTES ? BN__PAGE_BYTES : 64, owned);
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
    a->base = bn__alloc_aligned(size ? size : 64, &a->owned);
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
        m->data = bn__alloc_aligned(m->nbytes, &m->owned);
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
    bn__split split;                  /* the work: row groups x token tiles (bn__tmatmul_worker) */
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

/* The sum of n int8 values. The inner loop of fixed length is one compilers
   vectorize at -O2 (an open-ended one they leave scalar: 1 % of a B = 8
   decode step, counted by each thread for each matrix). */
static int32_t bn__sum_i8(const int8_t *x, int n) {
    int32_t total = 0;
    int c = 0, j;
    for (; c + 64 <= n; c += 64) {
        int32_t s = 0;
        for (j = 0; j < 64; j++) s += x[c + j];
        total += s;
    }
    for (; c < n; c++) total += x[c];
    return total;
}

static void bn__ttile_init(bn__ttile *tile, const bn_tmat *m, const int8_t *xq, int t0, int nt, int nfull, int bw) {
    int t;
    tile->nt = nt;
    for (t = 0; t < nt; t++) {
        const int8_t *x = xq + (size_t)(t0 + t) * m->cols;
        tile->sumx[t] = bn__sum_i8(x, m->cols);
        tile->x[t] = x;
        if (nfull * bw < m->cols) {
            memset(tile->tail_buf[t], 0, sizeof tile->tail_buf[t]);
            memcpy(tile->tail_buf[t], x + (size_t)nfull * bw, (size_t)(m->cols - nfull * bw));
        }
        tile->tail[t] = tile->tail_buf[t];
    }
}

/* out[i] = (float)(d[i * stride] - sumx) * scale / act_scale for four rows
   i: the outputs of one token, with the four divisions in one instruction
   where the ISA's baseline has it (SSE2 on x86-64, NEON on aarch64): the
   same IEEE results as four scalar divisions, which would cost 10-20 % of a
   GEMV. The lanes are built in registers: four scalar stores read back as
   one vector would stall store-to-load forwarding (measured: with them, a
   third of an 8-token GEMM went to this step). */
#if !defined(BITNET_NO_SIMD) && (defined(__SSE2__) || defined(_M_X64))
#include <emmintrin.h>
static void bn__scale4(const int32_t *d, int stride, int32_t sumx, float scale, float act_scale, float *out) {
    __m128i v = _mm_setr_epi32(d[0], d[stride], d[2 * stride], d[3 * stride]);
    __m128 f = _mm_cvtepi32_ps(_mm_sub_epi32(v, _mm_set1_epi32(sumx)));
    _mm_storeu_ps(out, _mm_div_ps(_mm_mul_ps(f, _mm_set1_ps(scale)), _mm_set1_ps(act_scale)));
}
#elif !defined(BITNET_NO_SIMD) && defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
static void bn__scale4(const int32_t *d, int stride, int32_t sumx, float scale, float act_scale, float *out) {
    int32x4_t v = vdupq_n_s32(d[0]);
    float32x4_t f;
    v = vsetq_lane_s32(d[stride], v, 1);
    v = vsetq_lane_s32(d[2 * stride], v, 2);
    v = vsetq_lane_s32(d[3 * stride], v, 3);
    f = vcvtq_f32_s32(vsubq_s32(v, vdupq_n_s32(sumx)));
    vst1q_f32(out, vdivq_f32(vmulq_f32(f, vdupq_n_f32(scale)), vdupq_n_f32(act_scale)));
}
#else
static void bn__scale4(const int32_t *d, int stride, int32_t sumx, float scale, float act_scale, float *out) {
    int i;
    for (i = 0; i < 4; i++) out[i] = (float)(d[i * stride] - sumx) * scale / act_scale;
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
            } else if (nr == 4) {
                bn__scale4(dots + t, nt, tile->sumx[t], m->scale, job->act_scale[t0 + t], job->out_f32[mi] + o);
            } else {
                for (i = 0; i < nr; i++)
                    job->out_f32[mi][o + i] = (float)(dots[i * nt + t] - tile->sumx[t]) * m->scale / job->act_scale[t0 + t];
            }
        }
    }
}

/* Row groups [glo, ghi) of the job, counted across its matrices, against one tile of tokens. */
static void bn__tmatmul_groups(const bn__tmatmul_job *job, const bn__ttile *tile, int t0, int glo, int ghi) {
    int mi, g;
    for (mi = 0, g = 0; mi < job->n_mats; g += bn__tmat_row_groups(job->m[mi]), mi++) {
        int lo = BN_MAX(glo - g, 0) * BN__RTILE, hi = BN_MIN(ghi - g, bn__tmat_row_groups(job->m[mi])) * BN__RTILE;
        if (lo < hi) bn__tmatmul_rows(job, mi, tile, t0, lo, BN_MIN(hi, job->m[mi]->rows));
    }
}

/* One thread: its parts of the work (bn__split). The work is every group of
   BN__RTILE rows of the job's matrices for every tile of BN__TTILE tokens,
   tile by tile: a tile's activations stay in L1 while the rows stream past,
   and a thread prepares each tile at most once. */
static void bn__tmatmul_worker(void *arg, int ith, int nth) {
    bn__tmatmul_job *job = (bn__tmatmul_job *)arg;
    const bn_tmat *m0 = job->m[0];
    int bw = bn__tlayout_block_weights(m0->layout), nfull = m0->cols / bw, total = 0, cur = -1, lo, hi, mi;
    bn__ttile tile;
    for (mi = 0; mi < job->n_mats; mi++) total += bn__tmat_row_groups(job->m[mi]);
    while (bn__split_next(&job->split, ith, nth, &lo, &hi)) {
        while (lo < hi) { /* a part may end in the next tile */
            int ti = lo / total, end = BN_MIN(hi, (ti + 1) * total);
            if (ti != cur) {
                bn__ttile_init(&tile, m0, job->xq, ti * BN__TTILE, BN_MIN(job->n_tokens - ti * BN__TTILE, BN__TTILE),
                               nfull, bw);
                cur = ti;
            }
            bn__tmatmul_groups(job, &tile, ti * BN__TTILE, lo - ti * total, end - ti * total);
            lo = end;
        }
    }
}

static void bn__tmatmul_run(const bn_tmat *const *ms, int n_mats, const int8_t *xq, int n_tokens, int32_t *out_i32,
                            float *const *out_f32, const float *act_scale, bn_pool *pool, bn_kernel kernel) {
    bn__tmatmul_job job;
    int i, total;
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
    for (i = 0, total = 0; i < n_mats; i++) total += bn__tmat_row_groups(ms[i]);
    bn__split_init(&job.split, pool, (n_tokens + BN__TTILE - 1) / BN__TTILE * total, 4);
    bn_pool_run(pool, bn__tmatmul_worker, &job);
}

/* Name the weights of a product of n_tokens tokens with the matrices ms
   (as bn_tmat_matmul_n fuses them) as the pool's next (bn__pool_ahead); its
   workers prefetch their shares of them once idle. Products of more than one
   tile of tokens split their work by tile too: no hint for them. */
static void bn__tmat_ahead(bn_pool *pool, const bn_tmat *const *ms, int n_mats, int n_tokens) {
    bn__ahead a;
    int i;
    memset(&a, 0, sizeof a);
    if (n_tokens <= BN__TTILE)
        for (i = 0; i < n_mats && i < BN__AHEAD_SPANS; i++) {
            a.base[i] = ms[i]->data;
            a.unit_bytes[i] = BN__RTILE * bn__tmat_row_bytes(ms[i]);
            a.bytes[i] = ms[i]->nbytes;
            a.units[i] = bn__tmat_row_groups(ms[i]);
            a.n = i + 1;
        }
    bn__pool_ahead(pool, &a);
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

static size_t bn__ftype_size(bn_ftype type) { return type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2; }

/* One weight as a float (without the int8 row scale). */
static float bn__fweight(const void *p, bn_ftype type) {
    switch (type) {
    case BN_FTYPE_F32: return *(const float *)p;
    case BN_FTYPE_BF16: return bn_bf16_to_f32(*(const uint16_t *)p);
    case BN_FTYPE_F16: return bn_f16_to_f32(*(const uint16_t *)p);
    default: return (float)*(const int8_t *)p;
    }
}

/* Columns of a tiled matrix: whole blocks. */
static size_t bn__fmat_tiled_cols(int cols) {
    return ((size_t)cols + BN_FMAT_TILE_COLS - 1) / BN_FMAT_TILE_COLS * BN_FMAT_TILE_COLS;
}

/* Bytes of a tiled rows x cols matrix: whole groups of rows and blocks. */
static size_t bn__fmat_tiled_bytes(int rows, int cols, bn_ftype type) {
    size_t groups = ((size_t)rows + BN_FMAT_TILE_ROWS - 1) / BN_FMAT_TILE_ROWS;
    return groups * BN_FMAT_TILE_ROWS * bn__fmat_tiled_cols(cols) * bn__ftype_size(type);
}

/* Where column j (0..15) of a row's block lies in a tiled block: BF16
   interleaves the two halves (see bn_fmat), the other types keep the order. */
static size_t bn__ftile_pos(bn_ftype type, size_t j) {
    if (type != BN_FTYPE_BF16) return j;
    return j < 8 ? 2 * j : 2 * (j - 8) + 1;
}

/* The position of element (r, c) in m->data, in elements. */
static size_t bn__fmat_index(const bn_fmat *m, size_t r, size_t c) {
    const size_t R = BN_FMAT_TILE_ROWS, C = BN_FMAT_TILE_COLS;
    if (!m->tiled) return r * (size_t)m->cols + c;
    return (r / R) * R * bn__fmat_tiled_cols(m->cols) + (c / C) * R * C + (r % R) * C + bn__ftile_pos(m->type, c % C);
}

/* Rows [r0, r1) of the row-major `src` (rows x cols elements of `type`)
   into the tiled `dst`, r0 a multiple of BN_FMAT_TILE_ROWS; the padding of
   those rows' groups is set to zero. */
static void bn__fmat_tile_rows(uint8_t *dst, const uint8_t *src, int rows, int cols, bn_ftype type, int r0, int r1) {
    const size_t R = BN_FMAT_TILE_ROWS, C = BN_FMAT_TILE_COLS, ncols = bn__fmat_tiled_cols(cols),
                 esize = bn__ftype_size(type);
    size_t g, r, c, j;
    for (g = (size_t)r0 / R; g * R < (size_t)r1; g++) {
        uint8_t *group = dst + g * R * ncols * esize;
        memset(group, 0, R * ncols * esize);
        for (r = g * R; r < (g + 1) * R && r < (size_t)rows; r++)
            for (c = 0; c < (size_t)cols; c += C) {
                uint8_t *block_row = group + ((c / C) * R * C + (r % R) * C) * esize;
                const uint8_t *from = src + (r * (size_t)cols + c) * esize;
                if (type != BN_FTYPE_BF16) memcpy(block_row, from, BN_MIN(C, (size_t)cols - c) * esize);
                else /* interleaved (bn__ftile_pos), 2 bytes at a time: a constant size copies in one move */
                    for (j = 0; j < C && c + j < (size_t)cols; j++)
                        memcpy(block_row + bn__ftile_pos(BN_FTYPE_BF16, j) * 2, from + j * 2, 2);
            }
    }
}

BN_API bn_status bn_fmat_tile(bn_fmat *dst, const bn_fmat *src, bn_error *err) {
    size_t nbytes = bn__fmat_tiled_bytes(src->rows, src->cols, src->type);
    uint8_t *data;
    memset(dst, 0, sizeof *dst);
    if (src->tiled) return bn_errorf(err, BN_ERR_ARG, "bn_fmat_tile: the matrix is tiled already");
    data = bn__alloc_aligned(nbytes, &dst->owned);
    if (src->type == BN_FTYPE_I8) dst->owned_scale = BN_ALLOC(float, src->rows > 0 ? src->rows : 1);
    if (!data || (src->type == BN_FTYPE_I8 && !dst->owned_scale)) {
        bn_fmat_free(dst);
        return bn_errorf(err, BN_ERR_NOMEM, "out of memory tiling a %d x %d matrix", src->rows, src->cols);
    }
    bn__fmat_tile_rows(data, (const uint8_t *)src->data, src->rows, src->cols, src->type, 0, src->rows);
    if (dst->owned_scale) {
        memcpy(dst->owned_scale, src->row_scale, sizeof(float) * (size_t)src->rows);
        dst->row_scale = dst->owned_scale;
    }
    dst->rows = src->rows;
    dst->cols = src->cols;
    dst->type = src->type;
    dst->data = data;
    dst->tiled = 1;
    return BN_OK;
}

static float bn__fmat_at(const bn_fmat *m, size_t r, size_t c) {
    float w = bn__fweight((const uint8_t *)m->data + bn__fmat_index(m, r, c) * bn__ftype_size(m->type), m->type);
    return m->type == BN_FTYPE_I8 ? w * m->row_scale[r] : w;
}

/* ---- Float matrices ------------------------------------------------------
   A float kernel computes out[r * nt + t] = sum_c w_r[c] * x[t][c] for a
   tile of nr <= BN__FROWS rows (of type `type`, without the int8 row scale)
   and nt <= BN__FTILE tokens. The weights come in blocks of 16 columns:
   columns 16b .. 16b + 15 of row r start at w + r * row_step + b * block_step
   bytes (row-major: row_step = a row's bytes, block_step = 16 elements'
   bytes; tiled: 16 and 16 * BN_FMAT_TILE_ROWS elements' bytes, and BF16
   blocks interleaved, see bn_fmat). Each (row, token) sum must be formed in
   the same order whatever the tile and the layout, so that a token's logits
   do not depend on the batch it was decoded in. */
#define BN__FROWS BN_FMAT_TILE_ROWS
#define BN__FTILE 8
typedef void (*bn__fdot_fn)(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int nr, bn_ftype type,
                            int cols, const float *const *x, int nt, float *out);

/* The address of column c of row r (see bn__fdot_fn). */
static const uint8_t *bn__fcol(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int r, int c,
                               bn_ftype type) {
    size_t j = (size_t)(c % BN_FMAT_TILE_COLS);
    return w + (size_t)r * row_step + (size_t)(c / BN_FMAT_TILE_COLS) * block_step +
           (tiled ? bn__ftile_pos(type, j) : j) * bn__ftype_size(type);
}

/* The dot of columns [c0, c1) of one row's 16-column block with x, which
   points at the block's column 0 (the SIMD kernels' tails). */
BN_MAYBE_UNUSED static float bn__fdot_block_part(const uint8_t *block, bn_ftype type, int tiled, int c0, int c1,
                                                 const float *x) {
    float acc = 0.0f;
    int c;
    for (c = c0; c < c1; c++) acc += bn__fweight(bn__fcol(block, 0, 0, tiled, 0, c, type), type) * x[c];
    return acc;
}

static void bn__fdot_scalar(const uint8_t *w, size_t row_step, size_t block_step, int tiled, int nr, bn_ftype type,
                            int cols, const float *const *x, int nt, float *out) {
    int r, t, c;
    for (r = 0; r < nr; r++)
        for (t = 0; t < nt; t++) {
            float acc = 0.0f;
            for (c = 0; c < cols; c++)
                acc += bn__fweight(bn__fcol(w, row_step, block_step, tiled, r, c, type), type) * x[t][c];
            out[r * nt + t] = acc;
        }
}

/* One token against two tiled groups of rows (2 x BN__FROWS) that lie
   group_bytes apart, cols a multiple of BN_FMAT_TILE_COLS: out[r] for the
   12 rows, each sum formed as the bn__fdot_fn of the same kernel forms it. */
typedef void (*bn__fdot12_fn)(const uint8_t *w, size_t group_bytes, size_t block_step, int cols, const float *x,
                              float *out);

/* Defined in ternary_simd.h: the SIMD float kernel for `kernel`, or NULL;
   the two-group one-token kernel for `kernel` and `type`, or NULL. */
static bn__fdot_fn bn__fdot_simd(bn_kernel kernel);
static bn__fdot12_fn bn__fdot12_simd(bn_kernel kernel, bn_ftype type);

typedef struct bn__fmatmul_job {
    const bn_fmat *m;
    const float *x;
    int n_tokens;
    float *y;
    bn__fdot_fn dot;
    bn__fdot12_fn dot12; /* for one token, two groups at a time, where the kernel has one */
    bn__split split; /* the work: groups of BN__FROWS rows */
} bn__fmatmul_job;

/* One thread: its parts of the groups of BN__FROWS rows (bn__split), for
   every token. A part goes in chunks of BN__FCHUNK rows
   (a few hundred KB, which stay in L2) and each chunk meets every tile of
   BN__FTILE tokens, so the matrix is read from memory once however many
   tokens there are; the kernel takes a group of rows at a time, so that
   each activation vector it loads serves the group's rows. */
#define BN__FCHUNK (8 * BN__FROWS)

/* What a kernel's dot for row r is multiplied by: the row's scale for I8, else 1. */
static float bn__fmat_out_scale(const bn_fmat *m, size_t r) { return m->type == BN_FTYPE_I8 ? m->row_scale[r] : 1.0f; }

/* One token, two groups at a time: group glo + i with group glo + half + i,
   so that the kernel reads two streams that each run on without a break
   through half of the part [glo, ghi). Taking two neighbouring groups
   instead restarts both streams every 30 KB of the 2B4T head, and the
   hardware prefetcher with them: on one Zen 5 core a loop of loads alone
   read 27 GB/s in that order and 36 GB/s in this one. Returns the first
   group left (the last one when the part has an odd count). */
static int bn__fmatmul_far_pairs(const bn__fmatmul_job *job, int glo, int ghi, size_t group_bytes, size_t block_step) {
    const bn_fmat *m = job->m;
    int half = (BN_MIN(ghi * BN__FROWS, m->rows) / BN__FROWS - glo) / 2, i, r;
    float dots[2 * BN__FROWS];
    for (i = 0; i < half; i++) {
        int g0 = glo + i, g1 = glo + half + i;
        job->dot12((const uint8_t *)m->data + (size_t)g0 * group_bytes, (size_t)half * group_bytes, block_step, m->cols,
                   job->x, dots);
        for (r = 0; r < BN__FROWS; r++) {
            size_t r0 = (size_t)g0 * BN__FROWS + r, r1 = (size_t)g1 * BN__FROWS + r;
            job->y[r0] = dots[r] * bn__fmat_out_scale(m, r0);
            job->y[r1] = dots[BN__FROWS + r] * bn__fmat_out_scale(m, r1);
        }
    }
    return glo + 2 * half;
}

static void bn__fmatmul_worker(void *arg, int ith, int nth) {
    bn__fmatmul_job *job = (bn__fmatmul_job *)arg;
    const bn_fmat *m = job->m;
    size_t esize = bn__ftype_size(m->type), row_step, block_step, group_bytes;
    const float *xs[BN__FTILE];
    float dots[BN__FROWS * BN__FTILE];
    int glo, ghi, lo, hi, c0, c1, t0, nt, nr, t, r, i;
    if (m->tiled) {
        row_step = BN_FMAT_TILE_COLS * esize;
        block_step = BN__FROWS * BN_FMAT_TILE_COLS * esize;
        group_bytes = BN__FROWS * bn__fmat_tiled_cols(m->cols) * esize;
    } else {
        row_step = (size_t)m->cols * esize;
        block_step = BN_FMAT_TILE_COLS * esize;
        group_bytes = BN__FROWS * row_step;
    }
    while (bn__split_next(&job->split, ith, nth, &glo, &ghi)) {
        if (job->dot12 && job->n_tokens == 1) glo = bn__fmatmul_far_pairs(job, glo, ghi, group_bytes, block_step);
        lo = glo * BN__FROWS;
        hi = BN_MIN(ghi * BN__FROWS, m->rows);
        for (c0 = lo; c0 < hi; c0 = c1) {
            c1 = BN_MIN(c0 + BN__FCHUNK, hi);
            for (t0 = 0; t0 < job->n_tokens; t0 += nt) {
                nt = BN_MIN(job->n_tokens - t0, BN__FTILE);
                for (t = 0; t < nt; t++) xs[t] = job->x + (size_t)(t0 + t) * m->cols;
                for (r = c0; r < c1; r += nr) {
                    const uint8_t *w = (const uint8_t *)m->data + (size_t)(r / BN__FROWS) * group_bytes;
                    nr = BN_MIN(c1 - r, BN__FROWS);
                    if (job->dot12 && nt == 1 && c1 - r >= 2 * BN__FROWS) {
                        nr = 2 * BN__FROWS;
                        job->dot12(w, group_bytes, block_step, m->cols, xs[0], dots);
                    } else {
                        job->dot(w, row_step, block_step, m->tiled, nr, m->type, m->cols, xs, nt, dots);
                    }
                    for (i = 0; i < nr; i++) {
                        float s = bn__fmat_out_scale(m, (size_t)(r + i));
                        for (t = 0; t < nt; t++) job->y[(size_t)(t0 + t) * m->rows + r + i] = dots[i * nt + t] * s;
                    }
                }
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
    job.dot12 = job.dot && m->tiled && m->cols % BN_FMAT_TILE_COLS == 0 ? bn__fdot12_simd(kernel, m->type) : NULL;
    if (!job.dot) job.dot = bn__fdot_scalar;
    bn__split_init(&job.split, pool, (m->rows + BN__FROWS - 1) / BN__FROWS, BN__FCHUNK / BN__FROWS);
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
    case BN_KERNEL_AVX512_GFNI: return "avx512-gfni";
    }
    return "unknown";
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TERNARY_MATMUL_H */
