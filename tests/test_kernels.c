/* Ternary weight layouts and matmul kernels, float matrices, activation
   quantization. Every SIMD kernel this machine (or qemu) can run must give
   integer results bit-identical to the scalar kernel, and the scalar kernel
   must match a brute-force product of the unpacked ternary values. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

static uint32_t rng_state = 12345u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static const bn_tlayout layouts[] = {BN_TLAYOUT_I2, BN_TLAYOUT_TQ1};
static const char *layout_name(bn_tlayout l) { return l == BN_TLAYOUT_TQ1 ? "tq1" : "i2"; }

static void fill_ternary(int8_t *v, size_t n, int mode) {
    size_t i;
    for (i = 0; i < n; i++) v[i] = (int8_t)(mode == 0 ? (int)(rnd() % 3) - 1 : mode);
}
static void fill_act(int8_t *x, size_t n, int mode) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = (int8_t)(mode == 0 ? (int)(rnd() % 256) - 128 : mode);
}

static void brute_force(const int8_t *w, const int8_t *x, int rows, int cols, int ntok, int32_t *out) {
    int t, r, c;
    for (t = 0; t < ntok; t++)
        for (r = 0; r < rows; r++) {
            int32_t acc = 0;
            for (c = 0; c < cols; c++) acc += w[(size_t)r * cols + c] * x[(size_t)t * cols + c];
            out[(size_t)t * rows + r] = acc;
        }
}

static void test_pack_roundtrip(void) {
    static const int shapes[][2] = {{1, 1}, {3, 7}, {5, 64}, {2, 255}, {4, 256}, {3, 257}, {2, 319}, {3, 320},
                                    {1, 321}, {7, 1000}};
    size_t s;
    int li, ok = 1;
    for (li = 0; li < 2; li++)
        for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int rows = shapes[s][0], cols = shapes[s][1], r, c;
            int8_t *v = (int8_t *)malloc((size_t)rows * cols);
            bn_tmat m;
            bn_error err;
            fill_ternary(v, (size_t)rows * cols, 0);
            if (bn_tmat_pack(&m, v, rows, cols, 0.5f, layouts[li], &err) != BN_OK) {
                ok = 0;
                printf("  pack failed: %s\n", err.msg);
            } else {
                if (m.layout != layouts[li] || m.rows != rows || m.cols != cols || m.scale != 0.5f) ok = 0;
                if ((uintptr_t)m.data % 64 != 0) ok = 0;
                for (r = 0; r < rows; r++)
                    for (c = 0; c < cols; c++)
                        if (bn_tmat_get(&m, r, c) != v[(size_t)r * cols + c]) ok = 0;
                bn_tmat_free(&m);
            }
            free(v);
        }
    BNT_CHECK(ok);
}

static void test_pack_sizes(void) {
    /* I2: 2 bits per weight, K padded to 256; TQ1: 1.6 bits, K padded to 320 */
    int8_t *v = (int8_t *)calloc(2560 * 4, 1);
    bn_tmat m;
    BNT_CHECK(bn_tmat_pack(&m, v, 4, 2560, 1.0f, BN_TLAYOUT_I2, NULL) == BN_OK);
    BNT_CHECK(m.nbytes == 4 * 640);
    bn_tmat_free(&m);
    BNT_CHECK(bn_tmat_pack(&m, v, 4, 2560, 1.0f, BN_TLAYOUT_TQ1, NULL) == BN_OK);
    BNT_CHECK(m.nbytes == 4 * 512);
    bn_tmat_free(&m);
    BNT_CHECK(bn_tmat_pack(&m, v, 1, 321, 1.0f, BN_TLAYOUT_TQ1, NULL) == BN_OK);
    BNT_CHECK(m.nbytes == 128);
    bn_tmat_free(&m);
    BNT_CHECK(bn_tmat_pack(&m, v, 1, 100, 1.0f, BN_TLAYOUT_DEFAULT, NULL) == BN_OK);
    BNT_CHECK(m.layout != BN_TLAYOUT_DEFAULT);
    bn_tmat_free(&m);
    free(v);
}

static void test_pack_rejects_bad_input(void) {
    int8_t v[6] = {0, 1, -1, 2, 0, 0};
    bn_tmat m;
    bn_error err;
    BNT_CHECK(bn_tmat_pack(&m, v, 2, 3, 1.0f, BN_TLAYOUT_I2, &err) == BN_ERR_ARG);
    BNT_CHECK(strstr(err.msg, "(1, 0)") != NULL);
    BNT_CHECK(m.data == NULL);
    BNT_CHECK(bn_tmat_pack(&m, v, 0, 3, 1.0f, BN_TLAYOUT_I2, &err) == BN_ERR_ARG);
    BNT_CHECK(bn_tmat_pack(&m, v, 2, 3, 1.0f, (bn_tlayout)42, &err) == BN_ERR_UNSUPPORTED);
    bn_tmat_free(&m);
}

/* One shape, one layout: scalar vs brute force, then every supported kernel
   vs scalar, bit for bit, with and without a thread pool. Modes: 0 random,
   else extreme constant weights/activations (int16 saturation would show). */
static int check_shape(bn_tlayout layout, int rows, int cols, int ntok, int wmode, int xmode, bn_pool *pool) {
    int8_t *w = (int8_t *)malloc((size_t)rows * cols);
    int8_t *x = (int8_t *)malloc((size_t)ntok * cols);
    int32_t *ref = (int32_t *)malloc(sizeof(int32_t) * (size_t)rows * ntok);
    int32_t *got = (int32_t *)malloc(sizeof(int32_t) * (size_t)rows * ntok);
    size_t n = (size_t)rows * ntok, i;
    int ok = 1, k;
    bn_tmat m;
    fill_ternary(w, (size_t)rows * cols, wmode);
    fill_act(x, (size_t)ntok * cols, xmode);
    brute_force(w, x, rows, cols, ntok, ref);
    if (bn_tmat_pack(&m, w, rows, cols, 1.0f, layout, NULL) != BN_OK) ok = 0;
    for (k = BN_KERNEL_SCALAR; ok && k <= BN_KERNEL_AVX512_GFNI; k++) {
        if (!bn_kernel_supported((bn_kernel)k)) continue;
        memset(got, 0x55, sizeof(int32_t) * n);
        bn_tmat_matmul_i32(&m, x, ntok, got, pool, (bn_kernel)k);
        for (i = 0; i < n; i++)
            if (got[i] != ref[i]) {
                printf("  %s %s %dx%d ntok %d modes %d/%d: out[%d] = %d, want %d\n", bn_kernel_name((bn_kernel)k),
                       layout_name(layout), rows, cols, ntok, wmode, xmode, (int)i, (int)got[i], (int)ref[i]);
                ok = 0;
                break;
            }
    }
    bn_tmat_free(&m);
    free(w);
    free(x);
    free(ref);
    free(got);
    return ok;
}

static void test_kernels_match_reference(void) {
    static const int cols_list[] = {1, 17, 64, 100, 255, 256, 257, 319, 320, 321, 640, 700, 1333};
    static const int rows_list[] = {1, 4, 5, 13};
    bn_pool *pool = bn_pool_new(2);
    size_t ci, ri;
    int li, ntok, ok = 1;
    for (li = 0; li < 2; li++)
        for (ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++)
            for (ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
                for (ntok = 1; ntok <= 17; ntok += (ntok < 9 ? 1 : 4))
                    if (!check_shape(layouts[li], rows_list[ri], cols_list[ci], ntok, 0, 0,
                                     (ri + ntok) % 2 ? pool : NULL))
                        ok = 0;
    BNT_CHECK(ok);
    bn_pool_free(pool);
}

static void test_kernels_extreme_values(void) {
    static const int modes[][2] = {{1, -128}, {-1, -128}, {1, 127}, {-1, 127}};
    size_t i;
    int li, ok = 1;
    for (li = 0; li < 2; li++)
        for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            if (!check_shape(layouts[li], 3, 2600, 5, modes[i][0], modes[i][1], NULL)) ok = 0;
            if (!check_shape(layouts[li], 5, 2600, 12, modes[i][0], modes[i][1], NULL)) ok = 0;
            if (!check_shape(layouts[li], 2, 7000, 1, modes[i][0], modes[i][1], NULL)) ok = 0;
        }
    BNT_CHECK(ok);
}

static void test_kernel_names_and_detect(void) {
    bn_kernel best = bn_kernel_detect();
    printf("  best kernel here: %s\n", bn_kernel_name(best));
    BNT_CHECK(best != BN_KERNEL_AUTO);
    BNT_CHECK(bn_kernel_supported(best));
    BNT_CHECK(bn_kernel_supported(BN_KERNEL_SCALAR));
    BNT_CHECK(strcmp(bn_kernel_name(BN_KERNEL_AVX512), "avx512") == 0);
    BNT_CHECK(strcmp(bn_kernel_name(BN_KERNEL_AVX512_GFNI), "avx512-gfni") == 0);
    /* the GFNI kernel runs wherever the AVX-512 one does and the CPU has GFNI */
    BNT_CHECK(!bn_kernel_supported(BN_KERNEL_AVX512_GFNI) || bn_kernel_supported(BN_KERNEL_AVX512));
#if defined(__aarch64__) && !defined(BITNET_NO_SIMD)
    BNT_CHECK(bn_kernel_supported(BN_KERNEL_NEON));
#endif
}

/* The float output: y = dot * weight scale / activation scale. */
static void test_matmul_float_scales(void) {
    int8_t w[6] = {1, -1, 0, 0, 1, 1}, x[6] = {10, 20, 30, -5, 7, 100};
    float act_scale[2] = {2.0f, 0.5f}, y[4];
    bn_tmat m;
    BNT_CHECK(bn_tmat_pack(&m, w, 2, 3, 0.25f, BN_TLAYOUT_I2, NULL) == BN_OK);
    bn_tmat_matmul(&m, x, act_scale, 2, y, NULL, BN_KERNEL_AUTO);
    /* token 0: dots -10, 50; token 1: dots -12, 107 */
    BNT_CHECKF(y[0] == -10 * 0.25f / 2.0f && y[1] == 50 * 0.25f / 2.0f, "%g %g", y[0], y[1]);
    BNT_CHECKF(y[2] == -12 * 0.25f / 0.5f && y[3] == 107 * 0.25f / 0.5f, "%g %g", y[2], y[3]);
    bn_tmat_free(&m);
}

/* HF BitLinear: a = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x * a), -128, 127). */
static void test_quantize_act_hf_formula(void) {
    float x1[6] = {127.0f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f};
    int8_t q[6];
    float a = bn_quantize_act(x1, 6, q);
    BNT_CHECK(a == 1.0f);
    BNT_CHECKF(q[0] == 127 && q[1] == 2 && q[2] == -4 && q[3] == 0 && q[4] == 0 && q[5] == 2,
               "%d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5]);
    {
        float x2[3] = {0.5f, -1.0f, 0.25f}; /* a = 127: 63.5 -> 64 (even), -127, 31.75 -> 32 */
        a = bn_quantize_act(x2, 3, q);
        BNT_CHECK(a == 127.0f);
        BNT_CHECKF(q[0] == 64 && q[1] == -127 && q[2] == 32, "%d %d %d", q[0], q[1], q[2]);
    }
    {
        float x3[3] = {0.0f, 1e-7f, -2e-6f}; /* max|x| below the 1e-5 floor: a = 127 / 1e-5 */
        a = bn_quantize_act(x3, 3, q);
        BNT_CHECK(a == 127.0f / 1e-5f);
        BNT_CHECKF(q[0] == 0 && q[1] == 1 && q[2] == -25, "%d %d %d", q[0], q[1], q[2]);
    }
    {
        float x4[2] = {0.0f, 0.0f};
        a = bn_quantize_act(x4, 2, q);
        BNT_CHECK(q[0] == 0 && q[1] == 0 && a == 127.0f / 1e-5f);
    }
}


/* Float matrices: every type and kernel against a double-precision product
   of the same (rounded) weights, within float summation error. */
static int check_fmat(bn_ftype type, int rows, int cols, int ntok, bn_pool *pool) {
    size_t n = (size_t)rows * cols, i;
    float *wf = (float *)malloc(sizeof(float) * n), *x = (float *)malloc(sizeof(float) * (size_t)ntok * cols);
    float *y = (float *)malloc(sizeof(float) * (size_t)rows * ntok), *scales = (float *)malloc(sizeof(float) * (size_t)rows);
    float *y_rm = (float *)malloc(sizeof(float) * (size_t)rows * ntok), *y1 = (float *)malloc(sizeof(float) * (size_t)rows);
    void *data = malloc(n * 4);
    bn_fmat m, tiled;
    const bn_fmat *cur;
    bn_error err;
    int ok = 1, k, r, c, t, layout;
    memset(&m, 0, sizeof m);
    for (i = 0; i < (size_t)ntok * cols; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) / 250.0f;
    for (r = 0; r < rows; r++) scales[r] = 0.01f * (float)(r + 1);
    for (i = 0; i < n; i++) {
        float v = (float)((int)(rnd() % 2001) - 1000) / 700.0f;
        switch (type) {
        case BN_FTYPE_F32: ((float *)data)[i] = v; wf[i] = v; break;
        case BN_FTYPE_BF16: ((uint16_t *)data)[i] = bn_f32_to_bf16(v); wf[i] = bn_bf16_to_f32(bn_f32_to_bf16(v)); break;
        case BN_FTYPE_F16: ((uint16_t *)data)[i] = bn_f32_to_f16(v); wf[i] = bn_f16_to_f32(bn_f32_to_f16(v)); break;
        case BN_FTYPE_I8: {
            int q = (int)(rnd() % 255) - 127;
            ((int8_t *)data)[i] = (int8_t)q;
            wf[i] = (float)q * scales[i / cols];
            break;
        }
        }
    }
    m.rows = rows;
    m.cols = cols;
    m.type = type;
    m.data = data;
    m.row_scale = scales;
    if (bn_fmat_tile(&tiled, &m, &err) != BN_OK) {
        printf("  bn_fmat_tile: %s\n", err.msg);
        ok = 0;
    }
    /* the tiled layout as documented: groups of BN_FMAT_TILE_ROWS rows, blocks of 16 columns, a
       BF16 row's 16 in the order 0, 8, 1, 9, ..., 7, 15 */
    for (r = 0; r < rows && ok; r++)
        for (c = 0; c < cols && ok; c++) {
            size_t cols16 = ((size_t)cols + 15) / 16 * 16, es = type == BN_FTYPE_F32 ? 4 : type == BN_FTYPE_I8 ? 1 : 2;
            size_t j = (size_t)(c % 16), pos = type != BN_FTYPE_BF16 ? j : j < 8 ? 2 * j : 2 * (j - 8) + 1;
            size_t R = BN_FMAT_TILE_ROWS, at = (size_t)r / R * R * cols16 + (size_t)(c / 16) * 16 * R +
                                              (size_t)r % R * 16 + pos;
            if (memcmp((const char *)tiled.data + at * es, (const char *)data + ((size_t)r * cols + c) * es, es) != 0) {
                printf("  tiled element (%d, %d) is not at %zu\n", r, c, at);
                ok = 0;
            }
        }
    for (layout = 0; layout < 2 && ok; layout++)
    for (k = BN_KERNEL_SCALAR; k <= BN_KERNEL_AVX512_GFNI; k++) {
        cur = layout ? &tiled : &m;
        if (!bn_kernel_supported((bn_kernel)k)) continue;
        bn_fmat_matmul_kernel(cur, x, ntok, y, pool, (bn_kernel)k);
        if (layout) { /* the same sums in the same order as row-major */
            bn_fmat_matmul_kernel(&m, x, ntok, y_rm, pool, (bn_kernel)k);
            if (memcmp(y, y_rm, sizeof(float) * (size_t)rows * ntok) != 0) {
                printf("  %s type %d %dx%d: tiled and row-major results differ\n", bn_kernel_name((bn_kernel)k),
                       (int)type, rows, cols);
                ok = 0;
            }
        }
        for (t = 0; t < ntok && ok; t++) { /* a token's result must not depend on its batch */
            bn_fmat_matmul_kernel(cur, x + (size_t)t * cols, 1, y1, NULL, (bn_kernel)k);
            for (r = 0; r < rows; r++)
                if (memcmp(&y1[r], &y[(size_t)t * rows + r], sizeof(float)) != 0) {
                    printf("  %s type %d cols %d: token %d alone %.9g, in a batch of %d %.9g\n",
                           bn_kernel_name((bn_kernel)k), (int)type, cols, t, y1[r], ntok, y[(size_t)t * rows + r]);
                    ok = 0;
                }
        }
        for (t = 0; t < ntok && ok; t++)
            for (r = 0; r < rows && ok; r++) {
                double want = 0.0, mag = 0.0;
                for (c = 0; c < cols; c++) {
                    want += (double)wf[(size_t)r * cols + c] * x[(size_t)t * cols + c];
                    mag += fabs((double)wf[(size_t)r * cols + c] * x[(size_t)t * cols + c]);
                }
                if (fabs(y[(size_t)t * rows + r] - want) > 1e-5 * mag + 1e-6) {
                    printf("  %s type %d %dx%d ntok %d: y[%d][%d] = %.7g, want %.7g\n", bn_kernel_name((bn_kernel)k),
                           (int)type, rows, cols, ntok, t, r, y[(size_t)t * rows + r], want);
                    ok = 0;
                }
            }
    }
    if (ok) { /* the embedding lookup reads the same values */
        float *row = (float *)malloc(sizeof(float) * cols);
        for (layout = 0; layout < 2; layout++)
            for (r = 0; r < rows; r++) {
                bn_fmat_row(layout ? &tiled : &m, r, row);
                for (c = 0; c < cols; c++)
                    if (row[c] != wf[(size_t)r * cols + c]) ok = 0;
            }
        free(row);
    }
    bn_fmat_free(&tiled);
    free(scales);
    free(y1);
    free(y_rm);
    free(wf);
    free(x);
    free(y);
    free(data);
    return ok;
}

static void test_fmat_matmul_all_types(void) {
    static const int cols_list[] = {1, 7, 15, 16, 17, 31, 32, 33, 100, 2563};
    static const bn_ftype types[] = {BN_FTYPE_F32, BN_FTYPE_BF16, BN_FTYPE_F16, BN_FTYPE_I8};
    bn_pool *pool = bn_pool_new(2);
    size_t ti, ci;
    int ntok, rows, ok = 1;
    /* rows 1..7 and 1..17 tokens: whole and partial tiles of 6 rows x 4 tokens, of 6 rows x 8
       tokens (BF16 with AVX-512) and of 1 row x 4 tokens (AVX2, NEON) */
    for (ti = 0; ti < 4; ti++)
        for (ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++)
            for (ntok = 1; ntok <= 17; ntok++)
                for (rows = 1 + (ntok + (int)ci) % 3; rows <= 7; rows += 3)
                    if (!check_fmat(types[ti], rows, cols_list[ci], ntok, ci % 2 ? pool : NULL)) ok = 0;
    BNT_CHECK(ok);
    bn_pool_free(pool);
}

/* Tiled matrices of 12 rows or more: one token goes two groups of rows at a
   time where the kernel has a form for it (BF16 with AVX-512, columns a
   multiple of 16), and must form every sum as the six-row kernel does for
   the row-major matrix and for a batch of tokens (check_fmat compares both
   bit for bit). One token pairs group i of a thread's part with group
   i + half of it; a part's odd group and a partial last group fall back to
   the six-row kernel, as do partial pairs of a chunk for the last token of a
   batch of 9, 17, ... */
static void test_fmat_matmul_two_groups(void) {
    static const int rows_list[] = {12, 13, 18, 29, 50, 64, 97}, cols_list[] = {16, 48, 2560};
    static const int ntoks[] = {1, 3, 9}; /* 9: eight tokens, then one */
    static const bn_ftype types[] = {BN_FTYPE_BF16, BN_FTYPE_F32};
    bn_pool *pool = bn_pool_new(3);
    size_t ri, ci, ti, ni;
    int ok = 1;
    for (ti = 0; ti < 2; ti++)
        for (ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
            for (ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++)
                for (ni = 0; ni < sizeof ntoks / sizeof ntoks[0]; ni++)
                    if (!check_fmat(types[ti], rows_list[ri], cols_list[ci], ntoks[ni], (ri + ci) % 2 ? pool : NULL)) ok = 0;
    BNT_CHECK(ok);
    bn_pool_free(pool);
}

/* bn_tmat_matmul_n (fused q/k/v, gate/up) gives exactly what separate
   bn_tmat_matmul calls give, for row counts that are not multiples of the
   row tile, any thread count, and (a fallback) matrices of different widths. */
static void test_matmul_n_matches_separate(void) {
    static const int rows[3] = {13, 4, 7};
    const int cols = 300, ntok = 11;
    int8_t *w = (int8_t *)malloc((size_t)13 * 400), *x = (int8_t *)malloc((size_t)ntok * 400);
    float act[11], *want[3], *got[3];
    bn_tmat m[3], wide;
    const bn_tmat *ms[3];
    bn_pool *pools[3];
    int i, p, ok = 1;
    size_t j;
    fill_ternary(w, (size_t)13 * 400, 0);
    fill_act(x, (size_t)ntok * 400, 0);
    for (i = 0; i < ntok; i++) act[i] = 10.0f + (float)i;
    pools[0] = NULL, pools[1] = bn_pool_new(2), pools[2] = bn_pool_new(3);
    for (i = 0; i < 3; i++) {
        BNT_CHECK(bn_tmat_pack(&m[i], w + i * 7, rows[i], cols, 0.5f + (float)i, BN_TLAYOUT_DEFAULT, NULL) == BN_OK);
        ms[i] = &m[i];
        want[i] = (float *)malloc(sizeof(float) * (size_t)rows[i] * ntok);
        got[i] = (float *)malloc(sizeof(float) * (size_t)rows[i] * ntok);
    }
    for (p = 0; p < 3; p++) {
        for (i = 0; i < 3; i++) bn_tmat_matmul(&m[i], x, act, ntok, want[i], pools[p], BN_KERNEL_AUTO);
        bn_tmat_matmul_n(ms, 3, x, act, ntok, got, pools[p], BN_KERNEL_AUTO);
        for (i = 0; i < 3; i++)
            for (j = 0; j < (size_t)rows[i] * ntok; j++) ok &= memcmp(&want[i][j], &got[i][j], sizeof(float)) == 0;
    }
    BNT_CHECK(ok);
    /* different widths: computed one by one */
    BNT_CHECK(bn_tmat_pack(&wide, w, 4, 400, 1.0f, BN_TLAYOUT_DEFAULT, NULL) == BN_OK);
    ms[1] = &wide;
    bn_tmat_matmul(&wide, x, act, ntok, want[1], pools[1], BN_KERNEL_AUTO);
    bn_tmat_matmul_n(ms, 2, x, act, ntok, got, pools[1], BN_KERNEL_AUTO);
    for (j = 0, ok = 1; j < (size_t)4 * ntok; j++) ok &= memcmp(&want[1][j], &got[1][j], sizeof(float)) == 0;
    BNT_CHECK(ok);
    bn_tmat_free(&wide);
    for (i = 0; i < 3; i++) {
        bn_tmat_free(&m[i]);
        free(want[i]);
        free(got[i]);
    }
    bn_pool_free(pools[1]);
    bn_pool_free(pools[2]);
    free(w);
    free(x);
}

int main(void) {
    BNT_RUN(test_pack_roundtrip);
    BNT_RUN(test_pack_sizes);
    BNT_RUN(test_pack_rejects_bad_input);
    BNT_RUN(test_kernel_names_and_detect);
    BNT_RUN(test_kernels_match_reference);
    BNT_RUN(test_kernels_extreme_values);
    BNT_RUN(test_matmul_float_scales);
    BNT_RUN(test_matmul_n_matches_separate);
    BNT_RUN(test_quantize_act_hf_formula);
    BNT_RUN(test_fmat_matmul_all_types);
    BNT_RUN(test_fmat_matmul_two_groups);
    return bnt_finish("test_kernels");
}
