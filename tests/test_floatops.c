/* The float helpers of the forward pass (src/float_simd.h) and the KV cache
   types. Each SIMD helper this machine (or qemu) can run is compared with the
   scalar reference over every length 1..300: within float-reassociation bounds
   for sums, bit for bit for the quantizer and the f16 conversion; the scalar
   ones against double-precision sums. The f16 KV cache is held to the HF
   fixtures' logits, and a token's logits must not depend on its batch. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define MAXN 300

static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
/* uniform in [lo, hi) */
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 8) * (1.0f / 16777216.0f); }

static const bn_kernel simd_kernels[] = {BN_KERNEL_AVX2, BN_KERNEL_AVX512, BN_KERNEL_NEON, BN_KERNEL_NEON_DOT, BN_KERNEL_AVX_VNNI,
                                           BN_KERNEL_AVX512_GFNI};
#define N_SIMD ((int)(sizeof simd_kernels / sizeof simd_kernels[0]))

/* The SIMD helpers of kernel k, or 0 when this build or CPU lacks them. */
static int simd_fops(int k, bn__fops *f) {
    bn__fops scalar;
    if (!bn_kernel_supported(simd_kernels[k])) return 0;
    bn__fops_init(f, simd_kernels[k]);
    bn__fops_init(&scalar, BN_KERNEL_SCALAR);
    return f->dot != scalar.dot; /* e.g. BITNET_NO_SIMD: nothing to compare */
}

/* ---- the scalar reference against sums in double ---- */
static void test_scalar_reference(void) {
    bn__fops f;
    float a[MAXN], b[MAXN], x[MAXN], y[MAXN];
    uint16_t h[MAXN];
    int n, i, ok = 1;
    bn__fops_init(&f, BN_KERNEL_SCALAR);
    for (n = 1; n <= MAXN; n += 7) {
        double dot = 0.0, mag = 0.0, ss = 0.0, es = 0.0, got;
        float max = -INFINITY;
        for (i = 0; i < n; i++) {
            a[i] = rndf(-2, 2);
            b[i] = rndf(-2, 2);
            h[i] = bn_f32_to_f16(b[i]);
            dot += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
            ss += (double)a[i] * a[i];
            x[i] = rndf(-30, 5);
            max = BN_MAX(max, x[i]);
        }
        for (i = 0; i < n; i++) es += exp((double)(x[i] - max)); /* the difference rounded in float, as the helpers do */
        if (fabs(f.dot(a, b, n) - dot) > 1e-6 * n * mag) ok = 0;
        dot = 0.0;
        for (i = 0; i < n; i++) dot += (double)a[i] * bn_f16_to_f32(h[i]);
        if (fabs(f.dot_f16(a, h, n) - dot) > 1e-6 * n * mag) ok = 0;
        if (fabs(f.sumsq(a, n) - ss) > 1e-12 * ss) ok = 0;
        for (i = 0; i < n; i++) y[i] = x[i];
        got = bn__softmax_exp(y, max, n);
        if (fabs(got - es) > 1e-6 * n * es) ok = 0;
        for (i = 0; i < n; i++)
            if (fabs(y[i] - exp((double)(x[i] - max))) > 1e-6 * exp((double)(x[i] - max))) ok = 0;
    }
    BNT_CHECK(ok);
}

/* ---- each SIMD helper against the scalar one ---- */
static void test_dot_axpy(void) {
    bn__fops s, f;
    float a[MAXN + 1], b[MAXN + 1], y0[MAXN + 1], y1[MAXN + 1];
    uint16_t h[MAXN + 1];
    int k, n, i, tested = 0;
    bn__fops_init(&s, BN_KERNEL_SCALAR);
    for (k = 0; k < N_SIMD; k++) {
        int bad_dot = 0, bad_dot16 = 0, bad_axpy = 0, bad_axpy16 = 0;
        if (!simd_fops(k, &f)) continue;
        tested++;
        for (n = 1; n <= MAXN; n++) {
            double mag = 0.0;
            float w = rndf(-1, 1), d0, d1;
            for (i = 0; i < n; i++) {
                a[i] = rndf(-2, 2);
                b[i] = rndf(-2, 2);
                h[i] = bn_f32_to_f16(rndf(-2, 2));
                y0[i] = y1[i] = rndf(-1, 1);
                mag += fabs((double)a[i] * b[i]);
            }
            y0[n] = y1[n] = 12345.0f; /* a sentinel past the end */
            /* reassociation: each partial sum rounds once per addition, n of them at most */
            d0 = s.dot(a, b, n);
            d1 = f.dot(a, b, n);
            if (fabs((double)d0 - d1) > 1.2e-7 * (n + 2) * mag) bad_dot++;
            mag = 0.0;
            for (i = 0; i < n; i++) mag += fabs((double)a[i] * bn_f16_to_f32(h[i]));
            d0 = s.dot_f16(a, h, n);
            d1 = f.dot_f16(a, h, n);
            if (fabs((double)d0 - d1) > 1.2e-7 * (n + 2) * mag) bad_dot16++;
            /* axpy: one fused or two rounded operations per element */
            s.axpy(y0, w, b, n);
            f.axpy(y1, w, b, n);
            for (i = 0; i < n; i++)
                if (fabsf(y0[i] - y1[i]) > 2.4e-7f * (fabsf(y0[i]) + fabsf(w * b[i]))) bad_axpy++;
            if (y1[n] != 12345.0f) bad_axpy++;
            s.axpy_f16(y0, w, h, n);
            f.axpy_f16(y1, w, h, n);
            for (i = 0; i < n; i++)
                if (fabsf(y0[i] - y1[i]) > 5e-7f * (fabsf(y0[i]) + 2.0f * fabsf(w))) bad_axpy16++;
            if (y1[n] != 12345.0f) bad_axpy16++;
        }
        BNT_CHECKF(!bad_dot, "%s: dot differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad_dot);
        BNT_CHECKF(!bad_dot16, "%s: dot_f16 differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad_dot16);
        BNT_CHECKF(!bad_axpy, "%s: axpy differs in %d elements", bn_kernel_name(simd_kernels[k]), bad_axpy);
        BNT_CHECKF(!bad_axpy16, "%s: axpy_f16 differs in %d elements", bn_kernel_name(simd_kernels[k]), bad_axpy16);
    }
    printf("    %d SIMD kernel families tested\n", tested);
}

/* Attention's row helpers over strided rows of f32 or f16: dot_rows equals
   the same family's dot on each row, bit for bit; wsum_rows is within
   reassociation bounds of the scalar weighted sum. */
static void test_rows(void) {
    enum { ROWS = 13, STRIDE = 4 * MAXN + 36 }; /* bytes between rows: not a multiple of 64 */
    bn__fops s, f;
    static unsigned char rows[ROWS * STRIDE];
    float q[MAXN], w[ROWS], d0[ROWS + 1], d1[ROWS + 1], o0[MAXN + 1], o1[MAXN + 1];
    int k, n, i, p, f16;
    bn__fops_init(&s, BN_KERNEL_SCALAR);
    for (k = 0; k < N_SIMD; k++) {
        int bad_dot = 0, bad_wsum = 0;
        if (!simd_fops(k, &f)) continue;
        for (n = 1; n <= MAXN; n++)
            for (f16 = 0; f16 < 2; f16++) {
                int n_rows = 1 + (int)(rnd() % ROWS);
                double wmag = 0.0;
                for (i = 0; i < n; i++) q[i] = rndf(-2, 2);
                for (p = 0; p < n_rows; p++) {
                    w[p] = rndf(0, 1);
                    wmag += w[p];
                    for (i = 0; i < n; i++) {
                        float v = rndf(-2, 2);
                        if (f16) ((uint16_t *)(rows + (size_t)p * STRIDE))[i] = bn_f32_to_f16(v);
                        else ((float *)(rows + (size_t)p * STRIDE))[i] = v;
                    }
                }
                d1[n_rows] = 12345.0f;
                o1[n] = 12345.0f;
                f.dot_rows(d1, q, rows, STRIDE, n_rows, n, f16);
                for (p = 0; p < n_rows; p++) {
                    const unsigned char *r = rows + (size_t)p * STRIDE;
                    d0[p] = f16 ? f.dot_f16(q, (const uint16_t *)r, n) : f.dot(q, (const float *)r, n);
                }
                bad_dot += memcmp(d0, d1, sizeof(float) * (size_t)n_rows) != 0 || d1[n_rows] != 12345.0f;
                s.wsum_rows(o0, w, rows, STRIDE, n_rows, n, f16);
                f.wsum_rows(o1, w, rows, STRIDE, n_rows, n, f16);
                for (i = 0; i < n; i++)
                    if (fabs((double)o0[i] - o1[i]) > 2.4e-7 * (n_rows + 2) * 2.0 * wmag) bad_wsum++;
                bad_wsum += o1[n] != 12345.0f;
            }
        BNT_CHECKF(!bad_dot, "%s: dot_rows differs from dot at %d lengths", bn_kernel_name(simd_kernels[k]), bad_dot);
        BNT_CHECKF(!bad_wsum, "%s: wsum_rows differs in %d elements", bn_kernel_name(simd_kernels[k]), bad_wsum);
    }
    /* the scalar weighted sum on hand-computed rows: 0.5 * (1, 2) + 0.25 * (4, -8) */
    ((float *)rows)[0] = 1.0f;
    ((float *)rows)[1] = 2.0f;
    ((float *)(rows + STRIDE))[0] = 4.0f;
    ((float *)(rows + STRIDE))[1] = -8.0f;
    w[0] = 0.5f;
    w[1] = 0.25f;
    s.wsum_rows(o0, w, rows, STRIDE, 2, 2, 0);
    BNT_CHECK(o0[0] == 1.5f && o0[1] == -1.0f);
}

/* The f16 conversion is exact: bit for bit, over normal, subnormal,
   overflowing and halfway values. */
/* ---- attention of a GQA group over a long cache (bn__attn_heads) ----
   Against softmax attention in double, for every kernel, f32 and f16 rows,
   across the BN__ATTN_CHUNK boundaries; and each head's result is the same
   bit for bit whether it is computed alone or with the rest of its group. */
static void test_attn_heads(void) {
    enum { HD = 64, HEADS = 4, KEYS = 600 };
    static const int n_keys_list[] = {1, 2, BN__ATTN_CHUNK - 1, BN__ATTN_CHUNK, BN__ATTN_CHUNK + 1, KEYS};
    static unsigned char kc[KEYS * HD * 4], vc[KEYS * HD * 4];
    static float scores[HEADS * KEYS + HD];
    float q[HEADS * HD], out[HEADS * HD], solo[HD];
    double sc[KEYS];
    int k, f16, li, j, p, i, worst_ok = 1, same = 1;
    double worst = 0.0;
    for (k = -1; k < N_SIMD; k++) {
        bn__fops f;
        if (k < 0) bn__fops_init(&f, BN_KERNEL_SCALAR);
        else if (!simd_fops(k, &f)) continue;
        for (f16 = 0; f16 < 2; f16++) {
            size_t row_bytes = (size_t)HD * (f16 ? 2 : 4);
            for (p = 0; p < KEYS; p++)
                for (i = 0; i < HD; i++) {
                    float kv = rndf(-2, 2), vv = rndf(-2, 2);
                    if (f16) {
                        ((uint16_t *)kc)[p * HD + i] = bn_f32_to_f16(kv);
                        ((uint16_t *)vc)[p * HD + i] = bn_f32_to_f16(vv);
                    } else {
                        ((float *)kc)[p * HD + i] = kv;
                        ((float *)vc)[p * HD + i] = vv;
                    }
                }
            for (i = 0; i < HEADS * HD; i++) q[i] = rndf(-1, 1);
            for (li = 0; li < (int)(sizeof n_keys_list / sizeof n_keys_list[0]); li++) {
                int n_keys = n_keys_list[li];
                bn__attn_heads(&f, HEADS, HD, q, out, kc, vc, row_bytes, n_keys, f16, scores, KEYS);
                for (j = 0; j < HEADS; j++) {
                    double max = -1e300, sum = 0.0;
                    for (p = 0; p < n_keys; p++) {
                        double d = 0.0;
                        for (i = 0; i < HD; i++)
                            d += (double)q[j * HD + i] * (f16 ? bn_f16_to_f32(((uint16_t *)kc)[p * HD + i])
                                                              : ((float *)kc)[p * HD + i]);
                        sc[p] = d / sqrt((double)HD);
                        if (sc[p] > max) max = sc[p];
                    }
                    for (p = 0; p < n_keys; p++) sum += (sc[p] = exp(sc[p] - max));
                    for (i = 0; i < HD; i++) {
                        double o = 0.0, err;
                        for (p = 0; p < n_keys; p++)
                            o += sc[p] / sum * (f16 ? bn_f16_to_f32(((uint16_t *)vc)[p * HD + i]) : ((float *)vc)[p * HD + i]);
                        err = fabs(o - out[j * HD + i]);
                        if (err > worst) worst = err;
                        if (err > 1e-5) worst_ok = 0;
                    }
                    bn__attn_heads(&f, 1, HD, q + j * HD, solo, kc, vc, row_bytes, n_keys, f16, scores, KEYS);
                    if (memcmp(solo, out + j * HD, sizeof solo) != 0) same = 0;
                }
            }
        }
    }
    BNT_CHECKF(worst_ok, "attention differs from double by up to %g", worst);
    BNT_CHECKF(same, "a head's attention depends on the heads computed with it");
}

static void test_to_f16(void) {
    bn__fops s, f;
    float x[MAXN];
    uint16_t h0[MAXN + 1], h1[MAXN + 1];
    int k, n, i;
    bn__fops_init(&s, BN_KERNEL_SCALAR);
    for (k = 0; k < N_SIMD; k++) {
        int bad = 0;
        if (!simd_fops(k, &f)) continue;
        for (n = 1; n <= MAXN; n++) {
            for (i = 0; i < n; i++) {
                switch (rnd() % 5) {
                case 0: x[i] = rndf(-70000, 70000); break;           /* some overflow to inf */
                case 1: x[i] = rndf(-1e-4f, 1e-4f); break;           /* half subnormals */
                case 2: { /* exactly halfway between two halves */
                    uint16_t hv = (uint16_t)(rnd() & 0x7aff);
                    x[i] = bn_f16_to_f32(hv) + 0.5f * (bn_f16_to_f32((uint16_t)(hv + 1)) - bn_f16_to_f32(hv));
                    break;
                }
                default: x[i] = rndf(-8, 8); break;
                }
            }
            h1[n] = 0xabcd;
            s.to_f16(h0, x, n);
            f.to_f16(h1, x, n);
            for (i = 0; i < n; i++) bad += h0[i] != h1[i];
            bad += h1[n] != 0xabcd;
        }
        BNT_CHECKF(!bad, "%s: %d f16 conversions differ", bn_kernel_name(simd_kernels[k]), bad);
    }
    /* the scalar conversion on hand-picked values: round half to even */
    BNT_CHECK(bn_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);             /* tie: to even (down) */
    BNT_CHECK(bn_f32_to_f16(1.0f + 3.0f * ldexpf(1.0f, -11)) == 0x3c02);      /* tie: to even (up) */
    BNT_CHECK(bn_f32_to_f16(65520.0f) == 0x7c00 && bn_f32_to_f16(-2.0f) == 0xc000);
}

static void test_sumsq(void) {
    bn__fops s, f;
    float x[MAXN];
    int k, n, i;
    bn__fops_init(&s, BN_KERNEL_SCALAR);
    for (k = 0; k < N_SIMD; k++) {
        int bad = 0, differ_as_float = 0;
        if (!simd_fops(k, &f)) continue;
        for (n = 1; n <= MAXN; n++) {
            double d0, d1;
            for (i = 0; i < n; i++) x[i] = rndf(-3, 3) * (rnd() % 4 == 0 ? 100.0f : 1.0f);
            d0 = s.sumsq(x, n);
            d1 = f.sumsq(x, n);
            if (fabs(d0 - d1) > 1e-15 * n * d0) bad++;
            differ_as_float += (float)(d0 / n) != (float)(d1 / n);
        }
        BNT_CHECKF(!bad, "%s: %d sums of squares differ", bn_kernel_name(simd_kernels[k]), bad);
        printf("    %s: mean square rounded to float differs from scalar at %d of %d lengths\n",
               bn_kernel_name(simd_kernels[k]), differ_as_float, MAXN);
    }
}

/* The element-by-element helpers are exact: bit for bit the scalar result. */
static void test_elementwise(void) {
    bn__fops s, f;
    float x[MAXN], w[MAXN], y0[MAXN + 1], y1[MAXN + 1];
    int k, n, i;
    bn__fops_init(&s, BN_KERNEL_SCALAR);
    for (k = 0; k < N_SIMD; k++) {
        int bad_add = 0, bad_scale = 0, bad_relu2 = 0;
        if (!simd_fops(k, &f)) continue;
        for (n = 1; n <= MAXN; n++) {
            float sc = rndf(0.01f, 3.0f);
            for (i = 0; i < n; i++) {
                x[i] = rndf(-4, 4);
                w[i] = rndf(-2, 2);
                y0[i] = y1[i] = rndf(-4, 4);
            }
            y1[n] = 12345.0f;
            s.add(y0, x, n);
            f.add(y1, x, n);
            bad_add += memcmp(y0, y1, sizeof(float) * (size_t)n) != 0 || y1[n] != 12345.0f;
            s.scale_mul(y0, x, w, sc, n);
            f.scale_mul(y1, x, w, sc, n);
            bad_scale += memcmp(y0, y1, sizeof(float) * (size_t)n) != 0 || y1[n] != 12345.0f;
            s.relu2_mul(y0, w, n);
            f.relu2_mul(y1, w, n);
            bad_relu2 += memcmp(y0, y1, sizeof(float) * (size_t)n) != 0 || y1[n] != 12345.0f;
        }
        BNT_CHECKF(!bad_add, "%s: add differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad_add);
        BNT_CHECKF(!bad_scale, "%s: scale_mul differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad_scale);
        BNT_CHECKF(!bad_relu2, "%s: relu2_mul differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad_relu2);
    }
    /* the scalar ones on hand-computed values */
    x[0] = 1.5f; x[1] = -2.0f; x[2] = 0.25f;
    w[0] = 2.0f; w[1] = 3.0f; w[2] = -4.0f;
    s.relu2_mul(x, w, 3); /* relu(1.5)^2 * 2, relu(-2)^2 * 3, relu(0.25)^2 * -4 */
    BNT_CHECK(x[0] == 4.5f && x[1] == 0.0f && x[2] == -0.25f);
    x[0] = 1.0f; x[1] = -2.0f;
    s.scale_mul(y0, x, w, 0.5f, 2);
    BNT_CHECK(y0[0] == 1.0f && y0[1] == -3.0f);
}

/* The quantizer against bn_quantize_act, bit for bit, with values on
   rounding ties (x * a = k + 0.5 exactly). */
static void test_quantize(void) {
    bn__fops f;
    float x[MAXN];
    int8_t q0[MAXN + 1], q1[MAXN + 1];
    int k, n, i;
    for (k = 0; k < N_SIMD; k++) {
        int bad = 0;
        if (!simd_fops(k, &f)) continue;
        for (n = 1; n <= MAXN; n++) {
            int ties = rnd() % 2, mode = rnd() % 3;
            float a0, a1;
            for (i = 0; i < n; i++) {
                if (ties) x[i] = (float)((int)(rnd() % 254) - 127) + 0.5f; /* amax 127 (below) gives a = 1 */
                else if (mode == 0) x[i] = rndf(-1e-6f, 1e-6f);             /* below the 1e-5 floor */
                else x[i] = rndf(-5, 5);
            }
            if (ties) x[rnd() % n] = 127.0f;
            if (ties) for (i = 0; i < n; i++) x[i] = BN_MIN(x[i], 127.0f);
            q1[n] = 77;
            a0 = bn_quantize_act(x, n, q0);
            a1 = f.quantize(x, n, q1);
            bad += a0 != a1 || memcmp(q0, q1, (size_t)n) != 0 || q1[n] != 77;
        }
        BNT_CHECKF(!bad, "%s: quantization differs at %d lengths", bn_kernel_name(simd_kernels[k]), bad);
    }
    /* ties round half to even, as torch.round */
    x[0] = 127.0f;
    x[1] = 2.5f;
    x[2] = -3.5f;
    x[3] = 0.5f;
    x[4] = -126.5f;
    bn_quantize_act(x, 5, q0);
    BNT_CHECK(q0[0] == 127 && q0[1] == 2 && q0[2] == -4 && q0[3] == 0 && q0[4] == -126);
}

/* ---- the KV cache types with a model ---- */

static float *ref_tensor(const bn_safetensors *ref, const char *name, size_t *n) {
    const bn_safetensors_tensor *t = bn_safetensors_find(ref, name);
    float *out;
    bn_error err;
    BNT_CHECKF(t != NULL, "reference tensor %s", name);
    if (!t) return NULL;
    *n = (size_t)bn_safetensors_numel(t);
    out = (float *)malloc(*n * sizeof(float));
    BNT_CHECK(bn_safetensors_read_f32(t, out, &err) == BN_OK);
    return out;
}

/* Logits of every prompt token, one bn_forward call. */
static float *prompt_logits(const bn_model *model, bn_ftype kv, bn_kernel kernel, const int32_t *ids, int n) {
    bn_context_params cp = bn_context_default_params();
    bn_context *ctx = NULL;
    bn_error err;
    int32_t pos[64];
    int8_t want[64];
    int V = bn_model_config(model)->vocab_size, t;
    float *out;
    bn_batch b;
    cp.kv_type = kv;
    cp.kernel = kernel;
    cp.n_ctx = 64;
    cp.n_threads = 1;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) return NULL;
    for (t = 0; t < n; t++) {
        pos[t] = t;
        want[t] = 1;
    }
    memset(&b, 0, sizeof b);
    b.n_tokens = n;
    b.token = ids;
    b.pos = pos;
    b.want_logits = want;
    out = (float *)malloc(sizeof(float) * (size_t)n * V);
    if (bn_forward(ctx, &b, &err) != BN_OK) {
        free(out);
        out = NULL;
    } else {
        for (t = 0; t < n; t++) memcpy(out + (size_t)t * V, bn_get_logits(ctx, t), sizeof(float) * (size_t)V);
    }
    bn_context_free(ctx);
    return out;
}

/* The f16 cache on the HF fixtures, beside the f32 cache. Rounding K and V
   to half precision (relative error <= 2^-11) moves some activations of these
   tiny random-weight models across an int8 rounding step, so the f16 cache
   does not meet the parity tests' 1e-3 (relative L2 of the logits): it
   measures 0.7e-2 .. 2.3e-2 here, the size of the int8 lm_head's error (2e-2
   in test_hf_parity). The bound holds it there; a wrong conversion or a row
   read at the wrong place gives errors of order 1. */
#define F16_TOL 3e-2
static void test_f16_cache_hf_parity(void) {
    static const char *const cases[] = {"tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"};
    int ci, kk;
    for (ci = 0; ci < 3; ci++)
        for (kk = 0; kk < 2; kk++) {
            char dir[256], refpath[256];
            bn_model *model = NULL;
            bn_safetensors *ref = NULL;
            bn_error err;
            size_t n_ids = 0, n_logits = 0;
            float *ids_f = NULL, *ref_logits = NULL, *l32 = NULL, *l16 = NULL;
            int32_t ids[64];
            bn_kernel kern = kk == 0 ? BN_KERNEL_SCALAR : bn_kernel_detect();
            int t, n;
            snprintf(dir, sizeof dir, BNT_FIXTURES "/hf/%s/packed", cases[ci]);
            snprintf(refpath, sizeof refpath, BNT_FIXTURES "/hf/%s/reference.safetensors", cases[ci]);
            BNT_CHECKF(bn_model_load(&model, dir, NULL, &err) == BN_OK, "%s: %s", dir, err.msg);
            BNT_CHECKF(bn_safetensors_load(&ref, refpath, &err) == BN_OK, "%s", err.msg);
            if (model && ref) {
                ids_f = ref_tensor(ref, "input_ids", &n_ids);
                ref_logits = ref_tensor(ref, "packed.logits", &n_logits);
            }
            if (ids_f && ref_logits && n_ids <= 64) {
                n = (int)n_ids;
                for (t = 0; t < n; t++) ids[t] = (int32_t)ids_f[t];
                l32 = prompt_logits(model, BN_FTYPE_F32, kern, ids, n);
                l16 = prompt_logits(model, BN_FTYPE_F16, kern, ids, n);
                BNT_CHECK(l32 && l16);
                if (l32 && l16) {
                    double e32 = bnt_rel_l2(l32, ref_logits, n_logits), e16 = bnt_rel_l2(l16, ref_logits, n_logits);
                    double d = bnt_rel_l2(l16, l32, n_logits);
                    printf("    %s (%s): logits rel L2 vs HF: f32 cache %.3e, f16 cache %.3e; f16 vs f32 %.3e\n",
                           cases[ci], bn_kernel_name(kern), e32, e16, d);
                    BNT_CHECKF(e16 <= F16_TOL, "%s: f16 cache rel L2 %.3g", cases[ci], e16);
                    BNT_CHECK(d > 0.0); /* the f16 cache is really used */
                }
            }
            free(ids_f);
            free(ref_logits);
            free(l32);
            free(l16);
            bn_safetensors_free(ref);
            bn_model_free(model);
        }
}

/* Three sequences in one batch (prefill of one beside the decoding of the
   others, then batched decode steps) give the same logits, bit for bit, as
   each sequence alone; bn_seq_copy copies the cache of either type. */
static void batched_equals_solo(bn_ftype kv, int n_threads) {
    bn_model *model = NULL;
    bn_context *ctx = NULL, *solo = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_error err;
    int32_t toks[3][12], bt[16], bp[16], bs[16], len[3] = {0, 0, 0};
    int8_t want[16];
    float *batched[3][12];
    int V, s, i, step, same = 1;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    V = bn_model_config(model)->vocab_size;
    for (s = 0; s < 3; s++)
        for (i = 0; i < 12; i++) toks[s][i] = (int32_t)(rnd() % (uint32_t)V);
    cp.kv_type = kv;
    cp.n_threads = n_threads;
    cp.n_ctx = 32;
    cp.n_seq = 4;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_OK);
    memset(batched, 0, sizeof batched);
    /* step 0: sequence 0 prefills 6 tokens; steps 1..6: sequence 0 decodes,
       sequence 1 prefills 3 then decodes, sequence 2 joins at step 3 */
    for (step = 0; step < 7 && ctx; step++) {
        bn_batch b;
        int n = 0;
        for (s = 0; s < 3; s++) {
            int take = s == 0 ? (step == 0 ? 6 : 1) : s == 1 ? (step == 1 ? 3 : step > 1) : (step >= 3 ? 2 : 0);
            for (i = 0; i < take; i++) {
                bt[n] = toks[s][len[s]];
                bp[n] = len[s];
                bs[n] = s;
                want[n] = 1;
                len[s]++;
                n++;
            }
        }
        memset(&b, 0, sizeof b);
        b.n_tokens = n;
        b.token = bt;
        b.pos = bp;
        b.seq = bs;
        b.want_logits = want;
        BNT_CHECKF(bn_forward(ctx, &b, &err) == BN_OK, "%s", err.msg);
        for (i = 0; i < n; i++) {
            batched[bs[i]][bp[i]] = (float *)malloc(sizeof(float) * (size_t)V);
            memcpy(batched[bs[i]][bp[i]], bn_get_logits(ctx, i), sizeof(float) * (size_t)V);
        }
    }
    /* each sequence alone, one token per call */
    cp.n_seq = 1;
    for (s = 0; s < 3; s++) {
        BNT_CHECK(bn_context_new(&solo, model, &cp, &err) == BN_OK);
        for (i = 0; i < len[s] && solo; i++) {
            BNT_CHECK(bn_eval(solo, 0, &toks[s][i], 1, &err) == BN_OK);
            if (batched[s][i] && memcmp(batched[s][i], bn_get_logits(solo, -1), sizeof(float) * (size_t)V) != 0) same = 0;
        }
        bn_context_free(solo);
        solo = NULL;
    }
    BNT_CHECKF(same, "kv %s, %d threads: batched logits differ from solo", kv == BN_FTYPE_F16 ? "f16" : "f32", n_threads);
    /* bn_seq_copy: sequence 3 := sequence 0; the same next token gives the same logits */
    if (ctx) {
        float *l0 = (float *)malloc(sizeof(float) * (size_t)V);
        int32_t next = toks[0][len[0] % 12];
        BNT_CHECK(bn_seq_copy(ctx, 0, 3, &err) == BN_OK && bn_seq_len(ctx, 3) == len[0]);
        BNT_CHECK(bn_eval(ctx, 0, &next, 1, &err) == BN_OK);
        memcpy(l0, bn_get_logits(ctx, -1), sizeof(float) * (size_t)V);
        BNT_CHECK(bn_eval(ctx, 3, &next, 1, &err) == BN_OK);
        BNT_CHECK(memcmp(l0, bn_get_logits(ctx, -1), sizeof(float) * (size_t)V) == 0);
        free(l0);
    }
    for (s = 0; s < 3; s++)
        for (i = 0; i < 12; i++) free(batched[s][i]);
    bn_context_free(ctx);
    bn_model_free(model);
}

static void test_batched_equals_solo_f16(void) {
    batched_equals_solo(BN_FTYPE_F16, 1);
    batched_equals_solo(BN_FTYPE_F16, 2);
}
static void test_batched_equals_solo_f32(void) {
    batched_equals_solo(BN_FTYPE_F32, 2);
}

static void test_kv_type_param(void) {
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_error err;
    BNT_CHECK(cp.kv_type == BN_FTYPE_F32); /* the default (README: KV cache) */
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    cp.kv_type = BN_FTYPE_BF16;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_ERR_ARG && ctx == NULL);
    BNT_CHECK(strstr(err.msg, "kv_type") != NULL);
    cp.kv_type = BN_FTYPE_F32;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_OK);
    BNT_CHECK(ctx && bn_context_get_params(ctx)->kv_type == BN_FTYPE_F32);
    bn_context_free(ctx);
    bn_model_free(model);
}

/* bn_context_profile: counts every stage's parallel regions, adds up times
   that are consistent with each other, changes no logit, and stops on NULL. */
static void test_profile(void) {
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_profile prof;
    bn_error err;
    int32_t toks[8] = {1, 5, 9, 2, 7, 3, 8, 4};
    float *plain = NULL;
    int V, L, s, k, ok = 1;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    V = bn_model_config(model)->vocab_size;
    L = bn_model_config(model)->n_layers;
    cp.n_threads = 3;
    cp.n_ctx = 32;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_OK);
    if (!ctx) return;
    /* the same tokens without and with the profile: the same logits */
    plain = (float *)malloc(sizeof(float) * (size_t)V);
    BNT_CHECK(bn_eval(ctx, 0, toks, 5, &err) == BN_OK);
    for (k = 5; k < 8; k++) BNT_CHECK(bn_eval(ctx, 0, &toks[k], 1, &err) == BN_OK);
    memcpy(plain, bn_get_logits(ctx, -1), sizeof(float) * (size_t)V);
    bn_context_reset(ctx);
    memset(&prof, 0, sizeof prof);
    bn_context_profile(ctx, &prof);
    BNT_CHECK(bn_eval(ctx, 0, toks, 5, &err) == BN_OK); /* a prompt of 5, then 3 decode steps */
    for (k = 5; k < 8; k++) BNT_CHECK(bn_eval(ctx, 0, &toks[k], 1, &err) == BN_OK);
    BNT_CHECK(memcmp(plain, bn_get_logits(ctx, -1), sizeof(float) * (size_t)V) == 0);
    BNT_CHECKF(prof.forwards == 4 && prof.tokens == 8, "%ld forwards, %ld tokens", prof.forwards, prof.tokens);
    /* one region per matmul stage and layer in every forward; the rows and
       RoPE only when the batch has several tokens (the prompt) */
    BNT_CHECK(prof.regions[BN_STAGE_QKV].regions == 4L * L && prof.regions[BN_STAGE_DOWN].regions == 4L * L);
    BNT_CHECK(prof.regions[BN_STAGE_GATE_UP].regions == 4L * L && prof.regions[BN_STAGE_O].regions == 4L * L);
    BNT_CHECK(prof.regions[BN_STAGE_ATTN].regions == 4L * L && prof.regions[BN_STAGE_HEAD].regions == 4);
    BNT_CHECK(prof.regions[BN_STAGE_ROPE_KV].regions == L && prof.regions[BN_STAGE_FFN_MID].regions == L);
    for (s = 0; s < BN_STAGE_COUNT; s++) {
        const bn_pool_stats *r = &prof.regions[s];
        if (r->wall > prof.seconds[s] + 1e-5 || r->busy > 3 * r->wall + 1e-5 || r->late < 0.0 || r->busy < 0.0) ok = 0;
        if (fabs(r->idle - (3 * r->wall - r->busy)) > 1e-6) ok = 0;
        for (k = 0; k < s; k++)
            if (!strcmp(bn_stage_name((bn_stage)s), bn_stage_name((bn_stage)k))) ok = 0;
    }
    BNT_CHECK(ok);
    BNT_CHECK(strcmp(bn_stage_name(BN_STAGE_QKV), "qkv") == 0 && strcmp(bn_stage_name(BN_STAGE_COUNT), "?") == 0);
    /* off: nothing more is added */
    bn_context_profile(ctx, NULL);
    BNT_CHECK(bn_eval(ctx, 0, toks, 1, &err) == BN_OK);
    BNT_CHECK(prof.forwards == 4 && prof.regions[BN_STAGE_QKV].regions == 4L * L);
    free(plain);
    bn_context_free(ctx);
    bn_model_free(model);
}

int main(void) {
    BNT_RUN(test_scalar_reference);
    BNT_RUN(test_dot_axpy);
    BNT_RUN(test_rows);
    BNT_RUN(test_attn_heads);
    BNT_RUN(test_to_f16);
    BNT_RUN(test_sumsq);
    BNT_RUN(test_elementwise);
    BNT_RUN(test_quantize);
    BNT_RUN(test_f16_cache_hf_parity);
    BNT_RUN(test_batched_equals_solo_f16);
    BNT_RUN(test_batched_equals_solo_f32);
    BNT_RUN(test_kv_type_param);
    BNT_RUN(test_profile);
    return bnt_finish("floatops");
}
