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
    BN_KERNEL_NEON_DOT
} bn_kernel;

typedef struct bn_tmat {
    int rows, cols;    /* rows = output features, cols = input features */
    bn_tlayout layout; /* never BN_TLAYOUT_DEFAULT once packed */
    float scale;       /* effective weight = ternary value * scale */
    uint8_t *data;     /* packed weights, owned (BN_FREE) */
    size_t nbytes;
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

/* out[t * m->rows + r] = sum_c W[r][c] * xq[t * m->cols + c], exact, for t < n_tokens. */
BN_API void bn_tmat_matmul_i32(const bn_tmat *m, const int8_t *xq, int n_tokens, int32_t *out, bn_pool *pool,
                               bn_kernel kernel);
/* y[t * m->rows + r] = dot * m->scale / act_scale[t]. */
BN_API void bn_tmat_matmul(const bn_tmat *m, const int8_t *xq, const float *act_scale, int n_tokens, float *y,
                           bn_pool *pool, bn_kernel kernel);

/* y[t * m->rows + r] = sum_c M[r][c] * x[t * m->cols + c] in float. */
BN_API void bn_fmat_matmul(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool);
/* Row r as floats (embedding lookup). */
BN_API void bn_fmat_row(const bn_fmat *m, int r, float *out);
BN_API void bn_fmat_free(bn_fmat *m);

BN_API bn_kernel bn_kernel_detect(void); /* best kernel this CPU (and this build) supports */
BN_API const char *bn_kernel_name(bn_kernel kernel);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ---- BN_TLAYOUT_I2, scalar reference ------------------------------------
   Row-major, 4 weights per byte, weight c of a row in bits 2*(c%4)..+1 of
   byte c/4, stored as value + 1 (0, 1, 2). Rows are padded to whole bytes.
   (The kernels issue replaces this with layouts designed for SIMD.) */

static size_t bn__i2_row_bytes(int cols) { return ((size_t)cols + 3) / 4; }

BN_API bn_status bn_tmat_pack(bn_tmat *m, const int8_t *values, int rows, int cols, float scale,
                              bn_tlayout layout, bn_error *err) {
    size_t rb = bn__i2_row_bytes(cols);
    int r, c;
    memset(m, 0, sizeof *m);
    if (rows <= 0 || cols <= 0) return bn_errorf(err, BN_ERR_ARG, "bn_tmat_pack: bad shape %d x %d", rows, cols);
    if (layout != BN_TLAYOUT_DEFAULT && layout != BN_TLAYOUT_I2)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "bn_tmat_pack: layout %d not available", (int)layout);
    m->data = BN_ZALLOC(uint8_t, rb * (size_t)rows);
    if (!m->data) return bn_errorf(err, BN_ERR_NOMEM, "bn_tmat_pack: out of memory for %d x %d", rows, cols);
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            int v = values[(size_t)r * cols + c];
            if (v < -1 || v > 1) {
                BN_FREE(m->data);
                m->data = NULL;
                return bn_errorf(err, BN_ERR_ARG, "bn_tmat_pack: value %d at (%d, %d) is not ternary", v, r, c);
            }
            m->data[(size_t)r * rb + (size_t)c / 4] |= (uint8_t)((v + 1) << (2 * (c % 4)));
        }
    m->rows = rows;
    m->cols = cols;
    m->layout = BN_TLAYOUT_I2;
    m->scale = scale;
    m->nbytes = rb * (size_t)rows;
    return BN_OK;
}

BN_API void bn_tmat_free(bn_tmat *m) {
    if (!m) return;
    BN_FREE(m->data);
    memset(m, 0, sizeof *m);
}

BN_API int bn_tmat_get(const bn_tmat *m, int r, int c) {
    uint8_t b = m->data[(size_t)r * bn__i2_row_bytes(m->cols) + (size_t)c / 4];
    return ((b >> (2 * (c % 4))) & 3) - 1;
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

BN_API void bn_tmat_matmul_i32(const bn_tmat *m, const int8_t *xq, int n_tokens, int32_t *out, bn_pool *pool,
                               bn_kernel kernel) {
    size_t rb = bn__i2_row_bytes(m->cols);
    int t, r, c;
    BN_UNUSED(pool);
    BN_UNUSED(kernel);
    for (t = 0; t < n_tokens; t++) {
        const int8_t *x = xq + (size_t)t * m->cols;
        for (r = 0; r < m->rows; r++) {
            const uint8_t *w = m->data + (size_t)r * rb;
            int32_t acc = 0;
            for (c = 0; c < m->cols; c++) acc += (((w[c / 4] >> (2 * (c % 4))) & 3) - 1) * x[c];
            out[(size_t)t * m->rows + r] = acc;
        }
    }
}

BN_API void bn_tmat_matmul(const bn_tmat *m, const int8_t *xq, const float *act_scale, int n_tokens, float *y,
                           bn_pool *pool, bn_kernel kernel) {
    int32_t *dots = BN_ALLOC(int32_t, (size_t)n_tokens * m->rows);
    size_t i, n = (size_t)n_tokens * m->rows;
    BN_ASSERT(dots);
    bn_tmat_matmul_i32(m, xq, n_tokens, dots, pool, kernel);
    for (i = 0; i < n; i++) y[i] = (float)dots[i] * m->scale / act_scale[i / m->rows];
    BN_FREE(dots);
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

BN_API void bn_fmat_matmul(const bn_fmat *m, const float *x, int n_tokens, float *y, bn_pool *pool) {
    int t, r, c;
    BN_UNUSED(pool);
    for (t = 0; t < n_tokens; t++)
        for (r = 0; r < m->rows; r++) {
            float acc = 0.0f;
            for (c = 0; c < m->cols; c++) acc += bn__fmat_at(m, (size_t)r, (size_t)c) * x[(size_t)t * m->cols + c];
            y[(size_t)t * m->rows + r] = acc;
        }
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

BN_API bn_kernel bn_kernel_detect(void) { return BN_KERNEL_SCALAR; }

BN_API const char *bn_kernel_name(bn_kernel kernel) {
    switch (kernel) {
    case BN_KERNEL_AUTO: return "auto";
    case BN_KERNEL_SCALAR: return "scalar";
    case BN_KERNEL_AVX2: return "avx2";
    case BN_KERNEL_AVX512: return "avx512";
    case BN_KERNEL_NEON: return "neon";
    case BN_KERNEL_NEON_DOT: return "neon-dotprod";
    }
    return "unknown";
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TERNARY_MATMUL_H */
