#ifndef BN_PART_FLOAT_SIMD_H
#define BN_PART_FLOAT_SIMD_H
#include "base.h"
#include "ternary_matmul.h"
#include "ternary_simd.h"
/* The float work of the forward pass outside the matmuls: attention's dot
   products and weighted sums over the KV cache (f32 or f16 rows), RMSNorm's
   sum of squares, activation quantization, and the
   conversion of K/V rows to f16. One set of helpers per kernel family
   (scalar, AVX2, AVX-512, NEON), chosen once per context by bn__fops_init and
   compiled with the per-function target attributes of ternary_simd.h.

   The scalar helpers are the reference. The SIMD ones sum in another order
   (several lanes, then a horizontal sum), so their results differ from the
   scalar ones by float reassociation only; the quantizer and the f16
   conversion are exact and match the scalar ones bit for bit. Each helper
   sums in an order fixed by n alone, so a token's result never depends on
   the batch it was computed in. */

#ifdef BITNET_IMPLEMENTATION

typedef struct bn__fops {
    float (*dot)(const float *a, const float *b, int n);        /* sum a[i] * b[i] */
    float (*dot_f16)(const float *a, const uint16_t *b, int n); /* b in IEEE half */
    void (*axpy)(float *y, float w, const float *v, int n);      /* y[i] += w * v[i] */
    void (*axpy_f16)(float *y, float w, const uint16_t *v, int n);
    void (*to_f16)(uint16_t *out, const float *x, int n);         /* round to nearest even */
    double (*sumsq)(const float *x, int n);       /* sum x[i]^2, accumulated in double */
    float (*quantize)(const float *x, int n, int8_t *q); /* bn_quantize_act, bit for bit */
    /* element by element, exact (bit for bit the scalar result): */
    void (*add)(float *y, const float *x, int n);                           /* y[i] += x[i] */
    void (*scale_mul)(float *out, const float *x, const float *w, float s, int n); /* out[i] = w[i] * (x[i] * s) */
    void (*relu2_mul)(float *g, const float *up, int n); /* g[i] = relu(g[i])^2 * up[i] */
    /* attention over n_rows cache rows of n elements, `stride` bytes apart, f32 or (f16 != 0) half:
       out[p] = dot(q, row p), summed as dot / dot_f16 do; and out[i] = sum_p w[p] * row_p[i],
       summed over p in order, as out = 0 followed by axpy / axpy_f16 of each row would. */
    void (*dot_rows)(float *out, const float *q, const unsigned char *rows, size_t stride, int n_rows, int n, int f16);
    void (*wsum_rows)(float *out, const float *w, const unsigned char *rows, size_t stride, int n_rows, int n, int f16);
} bn__fops;

/* ---- scalar: the reference ---- */
static float bn__dot_scalar(const float *a, const float *b, int n) {
    float s = 0.0f;
    int i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static float bn__dot_f16_scalar(const float *a, const uint16_t *b, int n) {
    float s = 0.0f;
    int i;
    for (i = 0; i < n; i++) s += a[i] * bn_f16_to_f32(b[i]);
    return s;
}
static void bn__axpy_scalar(float *y, float w, const float *v, int n) {
    int i;
    for (i = 0; i < n; i++) y[i] += w * v[i];
}
static void bn__axpy_f16_scalar(float *y, float w, const uint16_t *v, int n) {
    int i;
    for (i = 0; i < n; i++) y[i] += w * bn_f16_to_f32(v[i]);
}
static void bn__to_f16_scalar(uint16_t *out, const float *x, int n) {
    int i;
    for (i = 0; i < n; i++) out[i] = bn_f32_to_f16(x[i]);
}
static void bn__add_scalar(float *y, const float *x, int n) {
    int i;
    for (i = 0; i < n; i++) y[i] += x[i];
}
static void bn__scale_mul_scalar(float *out, const float *x, const float *w, float s, int n) {
    int i;
    for (i = 0; i < n; i++) out[i] = w[i] * (x[i] * s);
}
static void bn__relu2_mul_scalar(float *g, const float *up, int n) {
    int i;
    for (i = 0; i < n; i++) {
        float v = g[i] > 0.0f ? g[i] * g[i] : 0.0f;
        g[i] = v * up[i];
    }
}

/* dot_rows of any family from its dot and dot_f16 (called with constant
   functions, so that once inlined they are direct calls). */
static inline void bn__dot_rows_with(float (*dot)(const float *, const float *, int),
                                     float (*dot_f16)(const float *, const uint16_t *, int), float *out, const float *q,
                                     const unsigned char *rows, size_t stride, int n_rows, int n, int f16) {
    int p;
    for (p = 0; p < n_rows; p++) {
        const unsigned char *r = rows + (size_t)p * stride;
        out[p] = f16 ? dot_f16(q, (const uint16_t *)r, n) : dot(q, (const float *)r, n);
    }
}

static void bn__dot_rows_scalar(float *out, const float *q, const unsigned char *rows, size_t stride, int n_rows,
                                int n, int f16) {
    bn__dot_rows_with(bn__dot_scalar, bn__dot_f16_scalar, out, q, rows, stride, n_rows, n, f16);
}
static void bn__wsum_rows_scalar(float *out, const float *w, const unsigned char *rows, size_t stride, int n_rows,
                                 int n, int f16) {
    int p, i;
    for (i = 0; i < n; i++) out[i] = 0.0f;
    for (p = 0; p < n_rows; p++) {
        const unsigned char *r = rows + (size_t)p * stride;
        if (f16) bn__axpy_f16_scalar(out, w[p], (const uint16_t *)r, n);
        else bn__axpy_scalar(out, w[p], (const float *)r, n);
    }
}

/* Softmax's exponentials, x[i] = exp(x[i] - max), returning their sum. Kept
   scalar (libm's expf) for every kernel: a vectorized polynomial exp (2 ulp)
   moved one activation of the HF fixtures across a rounding tie of the int8
   quantization (HF parity lost), for little: the exponentials are one per
   key and head, the dot products and weighted sums 2 x head_dim FMAs each. */
static float bn__softmax_exp(float *x, float max, int n) {
    float s = 0.0f;
    int i;
    for (i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        s += x[i];
    }
    return s;
}
static double bn__sumsq_scalar(const float *x, int n) {
    double s = 0.0;
    int i;
    for (i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}


/* ---- x86: AVX2 + FMA + F16C, and AVX-512 ---- */
#if defined(BN__SIMD_X86)

BN__TARGET_AVX2 static float bn__fsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    return _mm_cvtss_f32(s);
}

BN__TARGET_AVX2 static float bn__dot_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= n) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    return bn__fsum8(_mm256_add_ps(s0, s1)) + bn__dot_scalar(a + i, b + i, n - i);
}

BN__TARGET_AVX2 BN__INLINE __m256 bn__load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

BN__TARGET_AVX2 static float bn__dot_f16_avx2(const float *a, const uint16_t *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bn__load_f16x8(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), bn__load_f16x8(b + i + 8), s1);
    }
    if (i + 8 <= n) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), bn__load_f16x8(b + i), s0);
        i += 8;
    }
    return bn__fsum8(_mm256_add_ps(s0, s1)) + bn__dot_f16_scalar(a + i, b + i, n - i);
}

BN__TARGET_AVX2 static void bn__axpy_avx2(float *y, float w, const float *v, int n) {
    __m256 wv = _mm256_set1_ps(w);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
    bn__axpy_scalar(y + i, w, v + i, n - i);
}

BN__TARGET_AVX2 static void bn__axpy_f16_avx2(float *y, float w, const uint16_t *v, int n) {
    __m256 wv = _mm256_set1_ps(w);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, bn__load_f16x8(v + i), _mm256_loadu_ps(y + i)));
    bn__axpy_f16_scalar(y + i, w, v + i, n - i);
}

BN__TARGET_AVX2 static void bn__to_f16_avx2(uint16_t *out, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    bn__to_f16_scalar(out + i, x + i, n - i);
}

BN__TARGET_AVX2 static double bn__sumsq_avx2(const float *x, int n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    double lanes[4];
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + bn__sumsq_scalar(x + i, n - i);
}

BN__TARGET_AVX2 static float bn__quantize_avx2(const float *x, int n, int8_t *q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 mx = _mm256_setzero_ps(), av;
    __m128 m4;
    float amax, a;
    int i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 0x55));
    amax = _mm_cvtss_f32(m4);
    for (; i < n; i++) amax = BN_MAX(amax, fabsf(x[i]));
    a = 127.0f / BN_MAX(amax, 1e-5f); /* exactly as bn_quantize_act */
    av = _mm256_set1_ps(a);
    for (i = 0; i + 8 <= n; i += 8) {
        /* cvtps rounds half to even (the default MXCSR mode), as rintf */
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), av));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(w, w));
    }
    for (; i < n; i++) {
        float v = rintf(x[i] * a);
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    return a;
}

BN__TARGET_AVX2 static void bn__add_avx2(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    bn__add_scalar(y + i, x + i, n - i);
}

BN__TARGET_AVX2 static void bn__scale_mul_avx2(float *out, const float *x, const float *w, float s, int n) {
    __m256 sv = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), sv)));
    bn__scale_mul_scalar(out + i, x + i, w + i, s, n - i);
}

BN__TARGET_AVX2 static void bn__relu2_mul_avx2(float *g, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_max_ps(_mm256_loadu_ps(g + i), _mm256_setzero_ps());
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(v, v), _mm256_loadu_ps(up + i)));
    }
    bn__relu2_mul_scalar(g + i, up + i, n - i);
}

BN__TARGET_AVX2 static void bn__dot_rows_avx2(float *out, const float *q, const unsigned char *rows, size_t stride,
                                              int n_rows, int n, int f16) {
    bn__dot_rows_with(bn__dot_avx2, bn__dot_f16_avx2, out, q, rows, stride, n_rows, n, f16);
}

BN__TARGET_AVX2 BN__INLINE __m256 bn__row8_avx2(const unsigned char *r, int c, int f16) {
    return f16 ? bn__load_f16x8((const uint16_t *)r + c) : _mm256_loadu_ps((const float *)r + c);
}

/* The output stays in registers while the rows stream by: 32 columns (four
   accumulators, for FMA latency) at a time, then 8, then single columns. */
BN__TARGET_AVX2 static void bn__wsum_rows_avx2(float *out, const float *w, const unsigned char *rows, size_t stride,
                                               int n_rows, int n, int f16) {
    int c = 0, p;
    for (; c + 32 <= n; c += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (p = 0; p < n_rows; p++) {
            const unsigned char *r = rows + (size_t)p * stride;
            __m256 wv = _mm256_set1_ps(w[p]);
            a0 = _mm256_fmadd_ps(wv, bn__row8_avx2(r, c, f16), a0);
            a1 = _mm256_fmadd_ps(wv, bn__row8_avx2(r, c + 8, f16), a1);
            a2 = _mm256_fmadd_ps(wv, bn__row8_avx2(r, c + 16, f16), a2);
            a3 = _mm256_fmadd_ps(wv, bn__row8_avx2(r, c + 24, f16), a3);
        }
        _mm256_storeu_ps(out + c, a0);
        _mm256_storeu_ps(out + c + 8, a1);
        _mm256_storeu_ps(out + c + 16, a2);
        _mm256_storeu_ps(out + c + 24, a3);
    }
    for (; c + 8 <= n; c += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (p = 0; p < n_rows; p++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[p]), bn__row8_avx2(rows + (size_t)p * stride, c, f16), a0);
        _mm256_storeu_ps(out + c, a0);
    }
    if (c < n) bn__wsum_rows_scalar(out + c, w, rows + (size_t)c * (f16 ? 2 : 4), stride, n_rows, n - c, f16);
}

BN__TARGET_AVX512 BN__INLINE __mmask16 bn__mask16(int left) {
    return left <= 0 ? (__mmask16)0 : left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* The AVX-512 helpers use the maskz_ forms of intrinsics with an all-ones
   mask (BN__ALL16): g++ 12 reports the plain forms' "undefined" start
   vector under -Wmaybe-uninitialized. */
#define BN__ALL16 ((__mmask16)0xffff)
#define BN__ALL8 ((__mmask8)0xff)
/* Lanes i and i + 8 added, then bn__fsum8. The halves are taken in
   registers: stored as one vector and read back as two, they stalled
   store-to-load forwarding, which made each attention score (one call per
   key and head) cost about twice its FMAs. */
BN__TARGET_AVX512 static float bn__fsum16(__m512 v) {
    __m512d d = _mm512_castps_pd(v);
    __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, d, 0));
    __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, d, 1));
    return bn__fsum8(_mm256_add_ps(lo, hi));
}

BN__TARGET_AVX512 static float bn__dot_avx512(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return bn__fsum16(_mm512_add_ps(s0, s1));
}

BN__TARGET_AVX512 BN__INLINE __m512 bn__load_f16x16(const uint16_t *p, __mmask16 m) {
    return _mm512_maskz_cvtph_ps((__mmask16)0xffff, _mm256_maskz_loadu_epi16(m, p));
}

BN__TARGET_AVX512 static float bn__dot_f16_avx512(const float *a, const uint16_t *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), bn__load_f16x16(b + i, 0xffff), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), bn__load_f16x16(b + i + 16, 0xffff), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), bn__load_f16x16(b + i, m), s0);
    }
    return bn__fsum16(_mm512_add_ps(s0, s1));
}

BN__TARGET_AVX512 static void bn__axpy_avx512(float *y, float w, const float *v, int n) {
    __m512 wv = _mm512_set1_ps(w);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(wv, _mm512_loadu_ps(v + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = bn__mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, v + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

BN__TARGET_AVX512 static void bn__axpy_f16_avx512(float *y, float w, const uint16_t *v, int n) {
    __m512 wv = _mm512_set1_ps(w);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(wv, bn__load_f16x16(v + i, 0xffff), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = bn__mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(wv, bn__load_f16x16(v + i, m), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

BN__TARGET_AVX512 static void bn__to_f16_avx512(uint16_t *out, const float *x, int n) {
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        __m256i h = _mm512_maskz_cvtps_ph(BN__ALL16, _mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(out + i, m, h);
    }
}

BN__TARGET_AVX512 static double bn__sumsq_avx512(const float *x, int n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0;
    double lanes[8];
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512d lo = _mm512_maskz_cvtps_pd(BN__ALL8, _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(v), 0)));
        __m512d hi = _mm512_maskz_cvtps_pd(BN__ALL8, _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(BN__ALL8, _mm512_castps_pd(v), 1)));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    _mm512_storeu_pd(lanes, _mm512_add_pd(s0, s1));
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

BN__TARGET_AVX512 static float bn__quantize_avx512(const float *x, int n, int8_t *q) {
    __m512 mx = _mm512_setzero_ps(), av;
    float lanes[16], amax = 0.0f, a;
    int i;
    for (i = 0; i < n; i += 16)
        mx = _mm512_maskz_max_ps(BN__ALL16, mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(bn__mask16(n - i), x + i)));
    _mm512_storeu_ps(lanes, mx);
    for (i = 0; i < 16; i++) amax = BN_MAX(amax, lanes[i]);
    a = 127.0f / BN_MAX(amax, 1e-5f); /* exactly as bn_quantize_act */
    av = _mm512_set1_ps(a);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        /* cvtps rounds half to even (the default MXCSR mode), as rintf; then saturate to int8 */
        __m512i v = _mm512_maskz_cvtps_epi32(BN__ALL16, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), av));
        _mm_mask_storeu_epi8(q + i, m, _mm512_maskz_cvtsepi32_epi8(BN__ALL16, v));
    }
    return a;
}

BN__TARGET_AVX512 static void bn__add_avx512(float *y, const float *x, int n) {
    int i;
    for (i = 0; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

BN__TARGET_AVX512 static void bn__scale_mul_avx512(float *out, const float *x, const float *w, float s, int n) {
    __m512 sv = _mm512_set1_ps(s);
    int i;
    for (i = 0; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv)));
    }
}

BN__TARGET_AVX512 static void bn__relu2_mul_avx512(float *g, const float *up, int n) {
    int i;
    for (i = 0; i < n; i += 16) {
        __mmask16 m = bn__mask16(n - i);
        __m512 v = _mm512_maskz_max_ps(BN__ALL16, _mm512_maskz_loadu_ps(m, g + i), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(_mm512_mul_ps(v, v), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

BN__TARGET_AVX512 static void bn__dot_rows_avx512(float *out, const float *q, const unsigned char *rows, size_t stride,
                                                int n_rows, int n, int f16) {
    bn__dot_rows_with(bn__dot_avx512, bn__dot_f16_avx512, out, q, rows, stride, n_rows, n, f16);
}

BN__TARGET_AVX512 BN__INLINE __m512 bn__row16_avx512(const unsigned char *r, int c, __mmask16 m, int f16) {
    return f16 ? bn__load_f16x16((const uint16_t *)r + c, m) : _mm512_maskz_loadu_ps(m, (const float *)r + c);
}

/* The output stays in registers while the rows stream by, 64 columns at a
   time; each lane sums exactly as axpy's fmadd would. */
BN__TARGET_AVX512 static void bn__wsum_rows_avx512(float *out, const float *w, const unsigned char *rows, size_t stride,
                                                 int n_rows, int n, int f16) {
    int c, p;
    for (c = 0; c < n; c += 64) {
        __mmask16 m0 = bn__mask16(n - c), m1 = bn__mask16(n - c - 16), m2 = bn__mask16(n - c - 32),
                  m3 = bn__mask16(n - c - 48);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (p = 0; p < n_rows; p++) {
            const unsigned char *r = rows + (size_t)p * stride;
            __m512 wv = _mm512_set1_ps(w[p]);
            a0 = _mm512_fmadd_ps(wv, bn__row16_avx512(r, c, m0, f16), a0);
            a1 = _mm512_fmadd_ps(wv, bn__row16_avx512(r, c + 16, m1, f16), a1);
            a2 = _mm512_fmadd_ps(wv, bn__row16_avx512(r, c + 32, m2, f16), a2);
            a3 = _mm512_fmadd_ps(wv, bn__row16_avx512(r, c + 48, m3, f16), a3);
        }
        _mm512_mask_storeu_ps(out + c, m0, a0);
        _mm512_mask_storeu_ps(out + c + 16, m1, a1);
        _mm512_mask_storeu_ps(out + c + 32, m2, a2);
        _mm512_mask_storeu_ps(out + c + 48, m3, a3);
    }
}

static void bn__fops_simd(bn__fops *f, bn_kernel kernel) {
    if (kernel == BN_KERNEL_AVX2 || kernel == BN_KERNEL_AVX_VNNI) {
        f->dot = bn__dot_avx2;
        f->dot_f16 = bn__dot_f16_avx2;
        f->axpy = bn__axpy_avx2;
        f->axpy_f16 = bn__axpy_f16_avx2;
        f->to_f16 = bn__to_f16_avx2;
        f->sumsq = bn__sumsq_avx2;
        f->quantize = bn__quantize_avx2;
        f->add = bn__add_avx2;
        f->scale_mul = bn__scale_mul_avx2;
        f->relu2_mul = bn__relu2_mul_avx2;
        f->dot_rows = bn__dot_rows_avx2;
        f->wsum_rows = bn__wsum_rows_avx2;
    } else if (kernel == BN_KERNEL_AVX512 || kernel == BN_KERNEL_AVX512_GFNI) {
        f->dot = bn__dot_avx512;
        f->dot_f16 = bn__dot_f16_avx512;
        f->axpy = bn__axpy_avx512;
        f->axpy_f16 = bn__axpy_f16_avx512;
        f->to_f16 = bn__to_f16_avx512;
        f->sumsq = bn__sumsq_avx512;
        f->quantize = bn__quantize_avx512;
        f->add = bn__add_avx512;
        f->scale_mul = bn__scale_mul_avx512;
        f->relu2_mul = bn__relu2_mul_avx512;
        f->dot_rows = bn__dot_rows_avx512;
        f->wsum_rows = bn__wsum_rows_avx512;
    }
}

/* ---- NEON (every aarch64 CPU has it, with f16 conversions) ---- */
#elif defined(BN__SIMD_NEON)

static float bn__dot_neon(const float *a, const float *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    return vaddvq_f32(vaddq_f32(s0, s1)) + bn__dot_scalar(a + i, b + i, n - i);
}

BN__INLINE float32x4_t bn__load_f16x4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static float bn__dot_f16_neon(const float *a, const uint16_t *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), bn__load_f16x4(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), bn__load_f16x4(b + i + 4));
    }
    return vaddvq_f32(vaddq_f32(s0, s1)) + bn__dot_f16_scalar(a + i, b + i, n - i);
}

static void bn__axpy_neon(float *y, float w, const float *v, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(v + i), w));
    bn__axpy_scalar(y + i, w, v + i, n - i);
}

static void bn__axpy_f16_neon(float *y, float w, const uint16_t *v, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), bn__load_f16x4(v + i), w));
    bn__axpy_f16_scalar(y + i, w, v + i, n - i);
}

static void bn__to_f16_neon(uint16_t *out, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    bn__to_f16_scalar(out + i, x + i, n - i);
}

static double bn__sumsq_neon(const float *x, int n) {
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
        s0 = vfmaq_f64(s0, lo, lo);
        s1 = vfmaq_f64(s1, hi, hi);
    }
    return vaddvq_f64(vaddq_f64(s0, s1)) + bn__sumsq_scalar(x + i, n - i);
}

static float bn__quantize_neon(const float *x, int n, int8_t *q) {
    float32x4_t mx = vdupq_n_f32(0.0f), av;
    float amax, a;
    int i = 0;
    for (; i + 4 <= n; i += 4) mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(x + i)));
    amax = vmaxvq_f32(mx);
    for (; i < n; i++) amax = BN_MAX(amax, fabsf(x[i]));
    a = 127.0f / BN_MAX(amax, 1e-5f); /* exactly as bn_quantize_act */
    av = vdupq_n_f32(a);
    for (i = 0; i + 8 <= n; i += 8) {
        /* vcvtn rounds half to even, as rintf; vqmovn saturates */
        int32x4_t lo = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + i), av));
        int32x4_t hi = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + i + 4), av));
        vst1_s8(q + i, vqmovn_s16(vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi))));
    }
    for (; i < n; i++) {
        float v = rintf(x[i] * a);
        q[i] = (int8_t)(v > 127.0f ? 127 : v < -128.0f ? -128 : v);
    }
    return a;
}

static void bn__add_neon(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
    bn__add_scalar(y + i, x + i, n - i);
}

static void bn__scale_mul_neon(float *out, const float *x, const float *w, float s, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), s)));
    bn__scale_mul_scalar(out + i, x + i, w + i, s, n - i);
}

static void bn__relu2_mul_neon(float *g, const float *up, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vmaxq_f32(vld1q_f32(g + i), vdupq_n_f32(0.0f));
        vst1q_f32(g + i, vmulq_f32(vmulq_f32(v, v), vld1q_f32(up + i)));
    }
    bn__relu2_mul_scalar(g + i, up + i, n - i);
}

static void bn__dot_rows_neon(float *out, const float *q, const unsigned char *rows, size_t stride, int n_rows, int n,
                              int f16) {
    bn__dot_rows_with(bn__dot_neon, bn__dot_f16_neon, out, q, rows, stride, n_rows, n, f16);
}

BN__INLINE float32x4_t bn__row4_neon(const unsigned char *r, int c, int f16) {
    return f16 ? bn__load_f16x4((const uint16_t *)r + c) : vld1q_f32((const float *)r + c);
}

/* The output stays in registers while the rows stream by: 16 columns (four
   accumulators) at a time, then 4, then single columns. */
static void bn__wsum_rows_neon(float *out, const float *w, const unsigned char *rows, size_t stride, int n_rows, int n,
                               int f16) {
    int c = 0, p;
    for (; c + 16 <= n; c += 16) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (p = 0; p < n_rows; p++) {
            const unsigned char *r = rows + (size_t)p * stride;
            a0 = vfmaq_n_f32(a0, bn__row4_neon(r, c, f16), w[p]);
            a1 = vfmaq_n_f32(a1, bn__row4_neon(r, c + 4, f16), w[p]);
            a2 = vfmaq_n_f32(a2, bn__row4_neon(r, c + 8, f16), w[p]);
            a3 = vfmaq_n_f32(a3, bn__row4_neon(r, c + 12, f16), w[p]);
        }
        vst1q_f32(out + c, a0);
        vst1q_f32(out + c + 4, a1);
        vst1q_f32(out + c + 8, a2);
        vst1q_f32(out + c + 12, a3);
    }
    for (; c + 4 <= n; c += 4) {
        float32x4_t a0 = vdupq_n_f32(0.0f);
        for (p = 0; p < n_rows; p++) a0 = vfmaq_n_f32(a0, bn__row4_neon(rows + (size_t)p * stride, c, f16), w[p]);
        vst1q_f32(out + c, a0);
    }
    if (c < n) bn__wsum_rows_scalar(out + c, w, rows + (size_t)c * (f16 ? 2 : 4), stride, n_rows, n - c, f16);
}

static void bn__fops_simd(bn__fops *f, bn_kernel kernel) {
    if (kernel != BN_KERNEL_NEON && kernel != BN_KERNEL_NEON_DOT) return;
    f->dot = bn__dot_neon;
    f->dot_f16 = bn__dot_f16_neon;
    f->axpy = bn__axpy_neon;
    f->axpy_f16 = bn__axpy_f16_neon;
    f->to_f16 = bn__to_f16_neon;
    f->sumsq = bn__sumsq_neon;
    f->quantize = bn__quantize_neon;
    f->add = bn__add_neon;
    f->scale_mul = bn__scale_mul_neon;
    f->relu2_mul = bn__relu2_mul_neon;
    f->dot_rows = bn__dot_rows_neon;
    f->wsum_rows = bn__wsum_rows_neon;
}

#else /* no SIMD in this build */

static void bn__fops_simd(bn__fops *f, bn_kernel kernel) {
    BN_UNUSED(f);
    BN_UNUSED(kernel);
}

#endif

/* The helpers for a kernel (BN_KERNEL_AUTO: this CPU's best). A kernel this
   build or CPU lacks gets the scalar ones. */
static void bn__fops_init(bn__fops *f, bn_kernel kernel) {
    if (kernel == BN_KERNEL_AUTO) kernel = bn_kernel_detect();
    f->dot = bn__dot_scalar;
    f->dot_f16 = bn__dot_f16_scalar;
    f->axpy = bn__axpy_scalar;
    f->axpy_f16 = bn__axpy_f16_scalar;
    f->to_f16 = bn__to_f16_scalar;
    f->sumsq = bn__sumsq_scalar;
    f->quantize = bn_quantize_act;
    f->add = bn__add_scalar;
    f->scale_mul = bn__scale_mul_scalar;
    f->relu2_mul = bn__relu2_mul_scalar;
    f->dot_rows = bn__dot_rows_scalar;
    f->wsum_rows = bn__wsum_rows_scalar;
    if (bn_kernel_supported(kernel)) bn__fops_simd(f, kernel);
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_FLOAT_SIMD_H */
