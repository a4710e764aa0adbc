/* The autograd ops: forward values against brute-force double-precision
   references or hand-computed numbers, and every backward against central
   finite differences of the forward (gradient checks). The fake-quant ops are
   checked against their straight-through definition instead: the forward
   rounds exactly as HF's WeightQuant / ActQuant, the backward is the identity. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

/* ---- helpers ------------------------------------------------------------ */
static uint32_t rng_state = 12345u;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static bn_ag_tensor *param(int ne0, int ne1, int ne2, float amp) {
    bn_ag_tensor *t = bn_ag_param_new(ne0, ne1, ne2, 1);
    size_t i;
    for (i = 0; i < t->n; i++) t->data[i] = amp * frand();
    return t;
}

/* Builds a graph's output from the parameters. */
typedef bn_ag_tensor *(*build_fn)(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx);

/* loss = sum(out * R) for a fixed random R, so every output element matters. */
static bn_ag_tensor *weighted_loss(bn_ag_graph *g, bn_ag_tensor *out) {
    bn_ag_tensor *r;
    uint32_t saved = rng_state;
    size_t i;
    if (!out) return NULL;
    r = bn_ag_input(g, out->ne[0], out->ne[1], out->ne[2], out->ne[3], NULL);
    if (!r) return NULL;
    rng_state = 777u;
    for (i = 0; i < r->n; i++) r->data[i] = frand();
    rng_state = saved;
    return bn_ag_sum(g, bn_ag_mul(g, out, r));
}

static double eval_loss(build_fn f, bn_ag_tensor **p, const void *ctx) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *loss = weighted_loss(g, f(g, p, ctx));
    double v = loss ? loss->data[0] : NAN;
    bn_ag_graph_free(g);
    return v;
}

/* Compare the analytic gradient of every parameter element with
   (L(x + eps) - L(x - eps)) / 2 eps. Float forward, so eps is not tiny and
   the tolerance is relative with an absolute floor. */
static void gradcheck(const char *name, build_fn f, bn_ag_tensor **p, int n_params, const void *ctx, float eps) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *loss;
    bn_error err;
    int k, bad = 0;
    double worst = 0.0;
    for (k = 0; k < n_params; k++) bn_ag_zero_grad(p[k]);
    loss = weighted_loss(g, f(g, p, ctx));
    BNT_CHECKF(loss != NULL, "%s: forward failed", name);
    if (!loss) {
        bn_ag_graph_free(g);
        return;
    }
    BNT_CHECKF(bn_ag_backward(g, loss, &err) == BN_OK, "%s: %s", name, err.msg);
    for (k = 0; k < n_params; k++) {
        size_t i;
        for (i = 0; i < p[k]->n; i++) {
            float x0 = p[k]->data[i];
            double lp, lm, num, ana = p[k]->grad[i], diff;
            p[k]->data[i] = x0 + eps;
            lp = eval_loss(f, p, ctx);
            p[k]->data[i] = x0 - eps;
            lm = eval_loss(f, p, ctx);
            p[k]->data[i] = x0;
            num = (lp - lm) / (2.0 * eps);
            diff = fabs(num - ana) / (fabs(num) + fabs(ana) + 0.05);
            if (diff > worst) worst = diff;
            if (diff > 0.01 && bad++ < 5) printf("  %s param %d[%d]: numeric %.6f analytic %.6f\n", name, k, (int)i, num, ana);
        }
    }
    BNT_CHECKF(bad == 0, "%s: %d gradients off (worst relative error %.4f)", name, bad, worst);
    bn_ag_graph_free(g);
}

/* ---- the blocked gemm against a triple loop ------------------------------ */
static void test_gemm_against_naive(void) {
    int shapes[4][3] = {{1, 1, 1}, {37, 45, 29}, {4, 32, 64}, {70, 3, 130}};
    int s, mode;
    for (s = 0; s < 4; s++)
        for (mode = 0; mode < 2; mode++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], i, j, k, bad = 0;
            /* mode 0: A and B row-major; mode 1: both transposed in memory */
            float *a = (float *)malloc(sizeof(float) * M * K), *b = (float *)malloc(sizeof(float) * K * N);
            float *c = (float *)malloc(sizeof(float) * M * N);
            size_t a_rs = mode ? 1 : (size_t)K, a_cs = mode ? (size_t)M : 1;
            size_t b_rs = mode ? 1 : (size_t)N, b_cs = mode ? (size_t)K : 1;
            for (i = 0; i < M * K; i++) a[i] = frand();
            for (i = 0; i < K * N; i++) b[i] = frand();
            for (i = 0; i < M * N; i++) c[i] = 0.5f;
            BNT_CHECK(bn_ag_gemm(NULL, M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, (size_t)N, 1) == BN_OK);
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) {
                    double want = 0.5;
                    for (k = 0; k < K; k++) want += (double)a[i * a_rs + k * a_cs] * b[k * b_rs + j * b_cs];
                    if (fabs(want - c[i * N + j]) > 1e-4 * (1.0 + fabs(want))) bad++;
                }
            BNT_CHECKF(bad == 0, "shape %dx%dx%d mode %d: %d wrong", M, N, K, mode, bad);
            free(a);
            free(b);
            free(c);
        }
}

/* ---- ops: builders for the gradient checks ------------------------------ */
static bn_ag_tensor *build_matmul(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_matmul(g, p[0], p[1]);
}
static bn_ag_tensor *build_add_mul_scale(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_scale(g, bn_ag_mul(g, bn_ag_add(g, p[0], p[1]), p[1]), -1.5f);
}
static bn_ag_tensor *build_rmsnorm(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_rmsnorm(g, p[0], p[1], 1e-5f);
}
static bn_ag_tensor *build_relu2(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_relu2(g, p[0]);
}
static bn_ag_tensor *build_silu(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_silu(g, p[0]);
}
static bn_ag_tensor *build_gated_relu2(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_gated(g, p[0], p[1], BN_AG_RELU2);
}
static bn_ag_tensor *build_gated_silu(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_gated(g, p[0], p[1], BN_AG_SILU);
}

static const int32_t test_pos[6] = {0, 1, 2, 7, 3, 11};
static bn_ag_tensor *build_rope(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_rope(g, p[0], 2, test_pos, 10000.0f);
}

typedef struct attn_case {
    int n_head, n_kv, seq_len;
} attn_case;
static bn_ag_tensor *build_attention(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    const attn_case *c = (const attn_case *)ctx;
    return bn_ag_attention(g, p[0], p[1], p[2], c->n_head, c->n_kv, c->seq_len);
}

static const int32_t test_ids[5] = {3, 0, 3, 2, 1};
static bn_ag_tensor *build_embed(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_embed(g, p[0], test_ids, 5);
}

static const int32_t test_targets[4] = {2, -1, 0, 6};
static bn_ag_tensor *build_cross_entropy(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    (void)ctx;
    return bn_ag_cross_entropy(g, p[0], test_targets);
}

/* A small network that reuses a parameter (tied embedding table), to check
   that gradients from several uses accumulate. */
static bn_ag_tensor *build_tiny_lm(bn_ag_graph *g, bn_ag_tensor **p, const void *ctx) {
    static const int32_t ids[6] = {1, 4, 2, 2, 0, 3}, pos[6] = {0, 1, 2, 0, 1, 2}, tgt[6] = {4, 2, 2, 0, 3, 1};
    bn_ag_tensor *x = bn_ag_embed(g, p[0], ids, 6), *h, *q, *a, *f;
    (void)ctx;
    h = bn_ag_rmsnorm(g, x, p[1], 1e-5f);
    q = bn_ag_rope(g, h, 2, pos, 10000.0f);
    a = bn_ag_attention(g, q, bn_ag_rope(g, h, 2, pos, 10000.0f), h, 2, 2, 3);
    x = bn_ag_add(g, x, bn_ag_matmul(g, a, p[2]));
    f = bn_ag_gated(g, bn_ag_matmul(g, x, p[3]), bn_ag_matmul(g, x, p[4]), BN_AG_RELU2);
    x = bn_ag_add(g, x, bn_ag_matmul(g, f, p[5]));
    return bn_ag_cross_entropy(g, bn_ag_matmul(g, bn_ag_rmsnorm(g, x, p[1], 1e-5f), p[0]), tgt);
}

static void free_params(bn_ag_tensor **p, int n) {
    int i;
    for (i = 0; i < n; i++) bn_ag_param_free(p[i]);
}

static void test_gradcheck_matmul(void) {
    bn_ag_tensor *p[2];
    p[0] = param(5, 3, 2, 1.0f); /* batched activations {K=5, M=3, B=2} */
    p[1] = param(5, 7, 2, 1.0f); /* a weight per batch */
    gradcheck("matmul batched", build_matmul, p, 2, NULL, 1e-2f);
    bn_ag_param_free(p[1]);
    p[1] = param(5, 7, 1, 1.0f); /* one weight shared by the batch */
    gradcheck("matmul shared weight", build_matmul, p, 2, NULL, 1e-2f);
    free_params(p, 2);
}

static void test_gradcheck_elementwise(void) {
    bn_ag_tensor *p[2];
    p[0] = param(6, 4, 1, 1.0f);
    p[1] = param(6, 4, 1, 1.0f);
    gradcheck("add/mul/scale", build_add_mul_scale, p, 2, NULL, 1e-2f);
    gradcheck("relu2", build_relu2, p, 1, NULL, 1e-3f);
    gradcheck("silu", build_silu, p, 1, NULL, 1e-2f);
    gradcheck("gated relu2", build_gated_relu2, p, 2, NULL, 1e-3f);
    gradcheck("gated silu", build_gated_silu, p, 2, NULL, 1e-2f);
    free_params(p, 2);
}

static void test_gradcheck_rmsnorm(void) {
    bn_ag_tensor *p[2];
    p[0] = param(8, 3, 1, 1.0f);
    p[1] = param(8, 1, 1, 1.0f);
    gradcheck("rmsnorm", build_rmsnorm, p, 2, NULL, 1e-2f);
    free_params(p, 2);
}

static void test_gradcheck_rope(void) {
    bn_ag_tensor *p[1];
    p[0] = param(12, 6, 1, 1.0f); /* 2 heads of 6 */
    gradcheck("rope", build_rope, p, 1, NULL, 1e-2f);
    free_params(p, 1);
}

static void test_gradcheck_attention(void) {
    attn_case gqa = {4, 2, 5}, mha = {2, 2, 3};
    bn_ag_tensor *p[3];
    p[0] = param(4 * 3, 10, 1, 1.0f); /* 4 heads of 3, 2 sequences of 5 */
    p[1] = param(2 * 3, 10, 1, 1.0f);
    p[2] = param(2 * 3, 10, 1, 1.0f);
    gradcheck("attention gqa", build_attention, p, 3, &gqa, 1e-2f);
    free_params(p, 3);
    p[0] = param(2 * 4, 6, 1, 1.0f);
    p[1] = param(2 * 4, 6, 1, 1.0f);
    p[2] = param(2 * 4, 6, 1, 1.0f);
    gradcheck("attention mha", build_attention, p, 3, &mha, 1e-2f);
    free_params(p, 3);
}

static void test_gradcheck_embed_and_ce(void) {
    bn_ag_tensor *p[1];
    p[0] = param(3, 4, 1, 1.0f);
    gradcheck("embed", build_embed, p, 1, NULL, 1e-2f);
    bn_ag_param_free(p[0]);
    p[0] = param(7, 4, 1, 2.0f);
    gradcheck("cross_entropy", build_cross_entropy, p, 1, NULL, 1e-2f);
    free_params(p, 1);
}

static void test_gradcheck_tiny_lm(void) {
    bn_ag_tensor *p[6];
    p[0] = param(4, 5, 1, 1.0f); /* tied embedding / head {D=4, V=5} */
    p[1] = param(4, 1, 1, 1.0f);
    p[2] = param(4, 4, 1, 0.5f);
    p[3] = param(4, 6, 1, 0.5f);
    p[4] = param(4, 6, 1, 0.5f);
    p[5] = param(6, 4, 1, 0.5f);
    gradcheck("tiny lm", build_tiny_lm, p, 6, NULL, 1e-2f);
    free_params(p, 6);
}

/* ---- forward values against references --------------------------------- */
static void test_attention_forward_reference(void) {
    int H = 4, KV = 2, hd = 3, S = 5, nseq = 2, s, h, i, j, d, bad = 0;
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *q = param(H * hd, S * nseq, 1, 1.0f), *k = param(KV * hd, S * nseq, 1, 1.0f);
    bn_ag_tensor *v = param(KV * hd, S * nseq, 1, 1.0f), *o = bn_ag_attention(g, q, k, v, H, KV, S);
    BNT_CHECK(o != NULL);
    for (s = 0; s < nseq && o; s++)
        for (h = 0; h < H; h++)
            for (i = 0; i < S; i++) {
                double w[5], mx = -1e30, sum = 0.0;
                int kvh = h / (H / KV);
                const float *qi = q->data + (s * S + i) * H * hd + h * hd;
                for (j = 0; j <= i; j++) {
                    const float *kj = k->data + (s * S + j) * KV * hd + kvh * hd;
                    w[j] = 0.0;
                    for (d = 0; d < hd; d++) w[j] += (double)qi[d] * kj[d];
                    w[j] /= sqrt((double)hd);
                    if (w[j] > mx) mx = w[j];
                }
                for (j = 0; j <= i; j++) sum += (w[j] = exp(w[j] - mx));
                for (d = 0; d < hd; d++) {
                    double want = 0.0;
                    for (j = 0; j <= i; j++) want += w[j] / sum * v->data[(s * S + j) * KV * hd + kvh * hd + d];
                    if (fabs(want - o->data[(s * S + i) * H * hd + h * hd + d]) > 1e-5) bad++;
                }
            }
    BNT_CHECKF(bad == 0, "%d attention outputs differ from the double reference", bad);
    bn_ag_graph_free(g);
    bn_ag_param_free(q);
    bn_ag_param_free(k);
    bn_ag_param_free(v);
}

static void test_rope_forward_values(void) {
    /* one head of 4: pairs (x0, x2) at frequency 1 and (x1, x3) at theta^(-1/2) = 0.01 */
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    float xs[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    int32_t pos[2] = {0, 5};
    bn_ag_tensor *x = bn_ag_input(g, 4, 2, 1, 1, xs), *y = bn_ag_rope(g, x, 1, pos, 10000.0f);
    double c0 = cos(5.0), s0 = sin(5.0), c1 = cos(0.05), s1 = sin(0.05);
    BNT_CHECK(y != NULL);
    if (y) {
        BNT_CHECK(y->data[0] == 1 && y->data[1] == 2 && y->data[2] == 3 && y->data[3] == 4); /* position 0 */
        BNT_CHECK(fabs(y->data[4] - (1 * c0 - 3 * s0)) < 1e-5);
        BNT_CHECK(fabs(y->data[6] - (3 * c0 + 1 * s0)) < 1e-5);
        BNT_CHECK(fabs(y->data[5] - (2 * c1 - 4 * s1)) < 1e-5);
        BNT_CHECK(fabs(y->data[7] - (4 * c1 + 2 * s1)) < 1e-5);
    }
    bn_ag_graph_free(g);
}

static void test_rmsnorm_and_ce_values(void) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    float xs[2] = {3, 4}, ws[2] = {1, 2}, zs[3] = {1, 2, 3};
    int32_t tgt[1] = {0};
    bn_ag_tensor *y = bn_ag_rmsnorm(g, bn_ag_input(g, 2, 1, 1, 1, xs), bn_ag_input(g, 2, 1, 1, 1, ws), 0.0f);
    bn_ag_tensor *ce = bn_ag_cross_entropy(g, bn_ag_input(g, 3, 1, 1, 1, zs), tgt);
    double rms = sqrt(12.5);
    BNT_CHECK(y && fabs(y->data[0] - 3 / rms) < 1e-6 && fabs(y->data[1] - 8 / rms) < 1e-6);
    BNT_CHECK(ce && fabs(ce->data[0] - (log(exp(1.0) + exp(2.0) + exp(3.0)) - 1.0)) < 1e-6);
    bn_ag_graph_free(g);
}

/* ---- BitNet fake quantization: forward as HF, straight-through backward -- */
static void test_weight_quant_ste(void) {
    /* mean|W| = 0.25 so s = 4: W s = 0.5 -> 0 (half to even), -2 -> -1 (clamp),
       1.25 -> 1, 0.25 -> 0, 1.5 -> 2 -> 1 (clamp), -0.375 * 4 = -1.5 -> -2 -> -1, 1 -> 1 */
    float ws[8] = {0.125f, -0.5f, 0.3125f, 0.0625f, 0.375f, -0.375f, 0.25f, 0.0f}; /* sum |W| = 2 */
    float want[8] = {0.0f, -0.25f, 0.25f, 0.0f, 0.25f, -0.25f, 0.25f, 0.0f};
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *w = bn_ag_param_new(8, 1, 1, 1), *wq, *loss;
    bn_error err;
    int8_t q[8];
    int i;
    memcpy(w->data, ws, sizeof ws);
    BNT_CHECK(bn_ternarize(ws, 8, q) == 4.0f);
    BNT_CHECK(q[0] == 0 && q[1] == -1 && q[2] == 1 && q[3] == 0 && q[4] == 1 && q[5] == -1 && q[6] == 1 && q[7] == 0);
    wq = bn_ag_weight_quant(g, w);
    BNT_CHECK(wq != NULL);
    for (i = 0; wq && i < 8; i++) BNT_CHECKF(wq->data[i] == want[i], "W'[%d] = %g, want %g", i, wq->data[i], want[i]);
    /* backward: identity, whatever the rounding did */
    loss = weighted_loss(g, wq);
    BNT_CHECK(bn_ag_backward(g, loss, &err) == BN_OK);
    rng_state = 777u; /* the R of weighted_loss */
    for (i = 0; i < 8; i++) BNT_CHECK(w->grad[i] == frand());
    bn_ag_graph_free(g);
    bn_ag_param_free(w);
}

static void test_act_quant_ste(void) {
    /* row 0: max 127 -> a = 1: 2.5 -> 2, -0.5 -> -0, 3.5 -> 4, -2.5 -> -2 (half to even)
       row 1: max 0.5 -> a = 254: 0.25 * 254 = 63.5 -> 64, -0.5 -> -127
       row 2: all zero -> a = 127 / 1e-5, stays zero */
    float xs[15] = {127, 2.5f, -0.5f, 3.5f, -2.5f, 0.25f, -0.5f, 0.5f, 0.0f, 0.001f, 0, 0, 0, 0, 0};
    float a1 = 254.0f;
    float want[15] = {127, 2, 0, 4, -2, 64 / a1, -127 / a1, 127 / a1, 0, rintf(0.001f * a1) / a1, 0, 0, 0, 0, 0};
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *x = bn_ag_param_new(5, 3, 1, 1), *xq, *loss;
    bn_error err;
    int8_t q[5];
    int i;
    memcpy(x->data, xs, sizeof xs);
    xq = bn_ag_act_quant(g, x);
    BNT_CHECK(xq != NULL);
    for (i = 0; xq && i < 15; i++) BNT_CHECKF(xq->data[i] == want[i], "x'[%d] = %.9g, want %.9g", i, xq->data[i], want[i]);
    /* the same quantization as the inference kernels' bn_quantize_act */
    BNT_CHECK(bn_quantize_act(xs + 5, 5, q) == a1 && q[0] == 64 && q[1] == -127 && q[2] == 127);
    loss = weighted_loss(g, xq);
    BNT_CHECK(bn_ag_backward(g, loss, &err) == BN_OK);
    rng_state = 777u;
    for (i = 0; i < 15; i++) BNT_CHECK(x->grad[i] == frand());
    bn_ag_graph_free(g);
    bn_ag_param_free(x);
}

/* ---- the tape: accumulation, rebuild without leaks, errors --------------- */
static void test_grads_accumulate_and_rebuild(void) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *w = bn_ag_param_new(3, 1, 1, 1);
    bn_error err;
    int step;
    w->data[0] = 1;
    w->data[1] = 2;
    w->data[2] = 3;
    for (step = 0; step < 3; step++) { /* d/dw sum(w * w) = 2w, three times */
        bn_ag_tensor *loss = bn_ag_sum(g, bn_ag_mul(g, w, w));
        BNT_CHECK(loss && loss->data[0] == 14.0f);
        BNT_CHECK(bn_ag_backward(g, loss, &err) == BN_OK);
        bn_ag_graph_reset(g);
    }
    BNT_CHECK(w->grad[0] == 6.0f && w->grad[1] == 12.0f && w->grad[2] == 18.0f);
    bn_ag_zero_grad(w);
    BNT_CHECK(w->grad[2] == 0.0f);
    bn_ag_graph_free(g);
    bn_ag_param_free(w);
}

static void test_errors(void) {
    bn_ag_graph *g = bn_ag_graph_new(NULL);
    bn_ag_tensor *a = bn_ag_param_new(3, 2, 1, 1), *b = bn_ag_param_new(4, 2, 1, 1), *y;
    int32_t bad_id[1] = {5};
    bn_error err;
    BNT_CHECK(bn_ag_add(g, a, b) == NULL);
    BNT_CHECK(bn_ag_graph_error(g) != NULL && bn_ag_graph_error(g)->status == BN_ERR_SHAPE);
    BNT_CHECK(strstr(bn_ag_graph_error(g)->msg, "add") != NULL);
    y = bn_ag_sum(g, a); /* the graph stays failed until reset */
    BNT_CHECK(y == NULL);
    BNT_CHECK(bn_ag_backward(g, y, &err) != BN_OK);
    bn_ag_graph_reset(g);
    BNT_CHECK(bn_ag_graph_error(g) == NULL);
    BNT_CHECK(bn_ag_embed(g, a, bad_id, 1) == NULL); /* id 5 of a 2-row table */
    bn_ag_graph_reset(g);
    BNT_CHECK(bn_ag_matmul(g, a, b) == NULL);
    bn_ag_graph_reset(g);
    BNT_CHECK(bn_ag_attention(g, a, a, a, 2, 2, 2) == NULL); /* 3 features do not split into 2 heads */
    bn_ag_graph_reset(g);
    BNT_CHECK(bn_ag_sum(g, NULL) == NULL && bn_ag_graph_error(g)->status == BN_ERR_ARG);
    bn_ag_graph_free(g);
    bn_ag_param_free(a);
    bn_ag_param_free(b);
}

int main(void) {
    BNT_RUN(test_gemm_against_naive);
    BNT_RUN(test_gradcheck_matmul);
    BNT_RUN(test_gradcheck_elementwise);
    BNT_RUN(test_gradcheck_rmsnorm);
    BNT_RUN(test_gradcheck_rope);
    BNT_RUN(test_gradcheck_attention);
    BNT_RUN(test_gradcheck_embed_and_ce);
    BNT_RUN(test_gradcheck_tiny_lm);
    BNT_RUN(test_attention_forward_reference);
    BNT_RUN(test_rope_forward_values);
    BNT_RUN(test_rmsnorm_and_ce_values);
    BNT_RUN(test_weight_quant_ste);
    BNT_RUN(test_act_quant_ste);
    BNT_RUN(test_grads_accumulate_and_rebuild);
    BNT_RUN(test_errors);
    return bnt_finish("autograd");
}
