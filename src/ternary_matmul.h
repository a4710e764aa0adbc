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

#endif /* BN_PART_TERNARY_MATMUL_H */
