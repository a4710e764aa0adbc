#ifndef BN_PART_AUTOGRAD_H
#define BN_PART_AUTOGRAD_H
#include "base.h"
#include "threads.h"
#include "ternary_matmul.h"
/* Tape-based reverse-mode autograd over float tensors: enough to train a small
   BitNet b1.58 transformer with quantization-aware training.

   The idea is micrograd's, the shapes are ggml's. Every op computes its
   result at once (eager) and records itself on the graph's tape: which op,
   which inputs, and whatever it kept for the backward pass. bn_ag_backward
   walks the tape in reverse from a scalar loss and *accumulates* into each
   input's grad. bn_ag_graph_reset frees every node of the step, so a training
   loop rebuilds the graph each step; parameters live outside any graph.

   Shapes follow ggml: ne[0] is the contiguous (innermost) dimension, so a
   tensor of T tokens with D features each is ne = {D, T, 1, 1} and row t is
   data + t * D.

   Errors: an op that cannot run (bad shapes, no memory, a NULL input) returns
   NULL and records why in the graph (bn_ag_graph_error), so a forward pass can
   be written straight through and checked once at the end. */

#ifndef BITNET_NO_TRAIN /* training compiled out: none of what follows */

typedef struct bn_ag_graph bn_ag_graph;
typedef struct bn_ag_tensor bn_ag_tensor;

struct bn_ag_tensor {
    int ne[4];         /* shape; unused dimensions are 1 */
    size_t n;          /* number of elements */
    float *data;
    float *grad;       /* same size as data; params: allocated at creation; nodes: by backward */
    int requires_grad; /* params, and every node computed from one */
    /* how the node was made (leaves: op 0, no sources) */
    int op;
    bn_ag_tensor *src[3];
    int iparam[4];
    float fparam[2];
    float *saved;      /* what the op keeps for its backward pass (owned) */
    int32_t *ids;      /* token ids, targets or positions the op keeps (owned) */
};

/* Ways the gated FFN activates its gate: act(gate) * up. */
typedef enum bn_ag_act { BN_AG_RELU2 = 0, BN_AG_SILU } bn_ag_act;

BN_EXTERN_C_BEGIN
/* A graph (tape) whose ops run their matrix work on pool (may be NULL). */
BN_API bn_ag_graph *bn_ag_graph_new(bn_pool *pool);
/* Free every node of the graph (not the parameters) and clear its error. */
BN_API void bn_ag_graph_reset(bn_ag_graph *g);
BN_API void bn_ag_graph_free(bn_ag_graph *g);
/* The first error since the last reset, or NULL. */
BN_API const bn_error *bn_ag_graph_error(const bn_ag_graph *g);
/* Record an error found by code that builds a graph (e.g. a model's forward);
   returns NULL so that `return bn_ag_graph_fail(...)` reads naturally. */
BN_API bn_ag_tensor *bn_ag_graph_fail(bn_ag_graph *g, bn_status status, const char *why);

/* A parameter: zero-filled data and grad, owned by the caller. */
BN_API bn_ag_tensor *bn_ag_param_new(int ne0, int ne1, int ne2, int ne3);
BN_API void bn_ag_param_free(bn_ag_tensor *t);
BN_API void bn_ag_zero_grad(bn_ag_tensor *t);
/* A constant input on the graph (copied from data when not NULL, else zeros). */
BN_API bn_ag_tensor *bn_ag_input(bn_ag_graph *g, int ne0, int ne1, int ne2, int ne3, const float *data);

/* Back-propagate from a one-element tensor: its grad is seeded with 1 and
   every tensor it depends on gets d loss / d tensor added to its grad. */
BN_API bn_status bn_ag_backward(bn_ag_graph *g, bn_ag_tensor *loss, bn_error *err);

/* ---- ops ---------------------------------------------------------------- */
/* out[b][m][n] = sum_k a[b][m][k] * w[b][n][k]: a is {K, M, B}, w is {K, N, B}
   or {K, N, 1} (shared by the batch); out is {N, M, B}. With a = activations
   and w = a weight matrix stored as PyTorch's [out, in], this is x W^T. */
BN_API bn_ag_tensor *bn_ag_matmul(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *w);
BN_API bn_ag_tensor *bn_ag_add(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *b);  /* same shape */
BN_API bn_ag_tensor *bn_ag_mul(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *b);  /* elementwise */
BN_API bn_ag_tensor *bn_ag_scale(bn_ag_graph *g, bn_ag_tensor *a, float s);
BN_API bn_ag_tensor *bn_ag_sum(bn_ag_graph *g, bn_ag_tensor *a); /* one element */
/* Each row of x (ne[0] values) as HF's RMSNorm: x / sqrt(mean(x^2) + eps) * w. */
BN_API bn_ag_tensor *bn_ag_rmsnorm(bn_ag_graph *g, bn_ag_tensor *x, bn_ag_tensor *w, float eps);
/* Rotary embedding, HF "rotate half" convention: x is {n_head * head_dim, T};
   row t is rotated by angle pos[t] * theta^(-2i / head_dim) in each head. */
BN_API bn_ag_tensor *bn_ag_rope(bn_ag_graph *g, bn_ag_tensor *x, int n_head, const int32_t *pos, float theta);
/* Causal softmax attention with grouped-query heads. q is {n_head * hd, T},
   k and v are {n_kv_head * hd, T}; the T rows are T / seq_len sequences of
   seq_len tokens each, and a token attends to itself and the tokens before it
   in its own sequence. Query head h reads kv head h / (n_head / n_kv_head).
   Scores are scaled by 1 / sqrt(hd). Output {n_head * hd, T}. */
BN_API bn_ag_tensor *bn_ag_attention(bn_ag_graph *g, bn_ag_tensor *q, bn_ag_tensor *k, bn_ag_tensor *v, int n_head,
                                     int n_kv_head, int seq_len);
BN_API bn_ag_tensor *bn_ag_relu2(bn_ag_graph *g, bn_ag_tensor *x); /* relu(x)^2 */
BN_API bn_ag_tensor *bn_ag_silu(bn_ag_graph *g, bn_ag_tensor *x);  /* x * sigmoid(x) */
/* Gated FFN core: act(gate) * up, elementwise (the two FFN input projections). */
BN_API bn_ag_tensor *bn_ag_gated(bn_ag_graph *g, bn_ag_tensor *gate, bn_ag_tensor *up, bn_ag_act act);
/* Rows of table ({D, V}) for n token ids: {D, n}. Ids are checked against V. */
BN_API bn_ag_tensor *bn_ag_embed(bn_ag_graph *g, bn_ag_tensor *table, const int32_t *ids, int n);
/* Mean over the rows of logits ({V, T}) of -log softmax(row)[target]; rows
   whose target is negative are skipped. One element. */
BN_API bn_ag_tensor *bn_ag_cross_entropy(bn_ag_graph *g, bn_ag_tensor *logits, const int32_t *targets);

/* BitNet b1.58 fake quantization with straight-through gradients (HF's
   WeightQuant / ActQuant): the forward rounds, the backward passes the
   gradient through unchanged.
   Weights, per tensor: s = 1 / max(mean|W|, 1e-5), W' = clamp(round(W s), -1, 1) / s.
   Activations, per row: a = 127 / max(max|x|, 1e-5),
   x' = clamp(round_half_even(x a), -128, 127) / a. */
BN_API bn_ag_tensor *bn_ag_weight_quant(bn_ag_graph *g, bn_ag_tensor *w);
BN_API bn_ag_tensor *bn_ag_act_quant(bn_ag_graph *g, bn_ag_tensor *x);
/* (The scale and ternary values bn_ag_weight_quant uses come from bn_ternarize.) */

/* C[M x N] (+)= A[M x K] B[K x N] with any strides: A(i, k) = a[i * a_rs + k * a_cs],
   B(k, j) = b[k * b_rs + j * b_cs], C row-major with ldc. The blocked, threaded
   matrix product the ops use; exposed for tests and benchmarks. */
BN_API bn_status bn_ag_gemm(bn_pool *pool, int M, int N, int K, const float *a, size_t a_rs, size_t a_cs, const float *b,
                            size_t b_rs, size_t b_cs, float *c, size_t ldc, int accumulate);
BN_EXTERN_C_END


#endif /* BITNET_NO_TRAIN */
#ifdef BITNET_IMPLEMENTATION
#ifndef BITNET_NO_TRAIN

enum {
    BN__AG_LEAF = 0,
    BN__AG_MATMUL,
    BN__AG_ADD,
    BN__AG_MUL,
    BN__AG_SCALE,
    BN__AG_SUM,
    BN__AG_RMSNORM,
    BN__AG_ROPE,
    BN__AG_ATTENTION,
    BN__AG_RELU2,
    BN__AG_SILU,
    BN__AG_GATED,
    BN__AG_EMBED,
    BN__AG_CROSS_ENTROPY,
    BN__AG_STE /* weight_quant and act_quant: identity backward */
};

struct bn_ag_graph {
    bn_ag_tensor **nodes; /* the tape, in the order the ops ran */
    int n_nodes, cap;
    bn_pool *pool;
    bn_error err;
    int failed;
};

BN_API bn_ag_graph *bn_ag_graph_new(bn_pool *pool) {
    bn_ag_graph *g = BN_ZALLOC(bn_ag_graph, 1);
    if (g) g->pool = pool;
    return g;
}

static void bn__ag_tensor_free(bn_ag_tensor *t) {
    if (!t) return;
    BN_FREE(t->data);
    BN_FREE(t->grad);
    BN_FREE(t->saved);
    BN_FREE(t->ids);
    BN_FREE(t);
}

BN_API void bn_ag_graph_reset(bn_ag_graph *g) {
    int i;
    if (!g) return;
    for (i = 0; i < g->n_nodes; i++) bn__ag_tensor_free(g->nodes[i]);
    g->n_nodes = 0;
    g->failed = 0;
    g->err.status = BN_OK;
    g->err.msg[0] = 0;
}

BN_API void bn_ag_graph_free(bn_ag_graph *g) {
    if (!g) return;
    bn_ag_graph_reset(g);
    BN_FREE(g->nodes);
    BN_FREE(g);
}

BN_API const bn_error *bn_ag_graph_error(const bn_ag_graph *g) { return g && g->failed ? &g->err : NULL; }

/* Record the first failure of the step; ops then return NULL. */
static bn_ag_tensor *bn__ag_fail(bn_ag_graph *g, bn_status st, const char *op, const char *why) {
    if (g && !g->failed) {
        bn_errorf(&g->err, st, "autograd %s: %s", op, why);
        g->failed = 1;
    }
    return NULL;
}

BN_API bn_ag_tensor *bn_ag_graph_fail(bn_ag_graph *g, bn_status status, const char *why) {
    return bn__ag_fail(g, status, "graph", why);
}

static bn_ag_tensor *bn__ag_alloc(int ne0, int ne1, int ne2, int ne3, int with_grad) {
    bn_ag_tensor *t;
    size_t n;
    if (ne0 <= 0 || ne1 <= 0 || ne2 <= 0 || ne3 <= 0) return NULL;
    n = (size_t)ne0 * (size_t)ne1 * (size_t)ne2 * (size_t)ne3;
    t = BN_ZALLOC(bn_ag_tensor, 1);
    if (!t) return NULL;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = ne3;
    t->n = n;
    t->data = BN_ZALLOC(float, n);
    if (with_grad) t->grad = BN_ZALLOC(float, n);
    if (!t->data || (with_grad && !t->grad)) {
        bn__ag_tensor_free(t);
        return NULL;
    }
    t->requires_grad = with_grad;
    return t;
}

BN_API bn_ag_tensor *bn_ag_param_new(int ne0, int ne1, int ne2, int ne3) { return bn__ag_alloc(ne0, ne1, ne2, ne3, 1); }

BN_API void bn_ag_param_free(bn_ag_tensor *t) { bn__ag_tensor_free(t); }

BN_API void bn_ag_zero_grad(bn_ag_tensor *t) {
    if (t && t->grad) memset(t->grad, 0, t->n * sizeof(float));
}

/* Put a new node on the tape. */
static bn_ag_tensor *bn__ag_push(bn_ag_graph *g, bn_ag_tensor *t, const char *op) {
    if (!t) return bn__ag_fail(g, BN_ERR_NOMEM, op, "out of memory");
    if (g->n_nodes == g->cap) {
        int cap = g->cap ? g->cap * 2 : 256;
        bn_ag_tensor **nodes = (bn_ag_tensor **)BN_REALLOC(g->nodes, sizeof(bn_ag_tensor *) * (size_t)cap);
        if (!nodes) {
            bn__ag_tensor_free(t);
            return bn__ag_fail(g, BN_ERR_NOMEM, op, "out of memory for the tape");
        }
        g->nodes = nodes;
        g->cap = cap;
    }
    g->nodes[g->n_nodes++] = t;
    return t;
}

/* A new result node of op over sources a, b, c (b and c may be NULL). */
static bn_ag_tensor *bn__ag_node(bn_ag_graph *g, const char *name, int op, const int ne[4], bn_ag_tensor *a, bn_ag_tensor *b,
                                 bn_ag_tensor *c) {
    bn_ag_tensor *t = bn__ag_alloc(ne[0], ne[1], ne[2], ne[3], 0);
    if (!bn__ag_push(g, t, name)) return NULL;
    t->op = op;
    t->src[0] = a;
    t->src[1] = b;
    t->src[2] = c;
    t->requires_grad = (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
    return t;
}

BN_API bn_ag_tensor *bn_ag_input(bn_ag_graph *g, int ne0, int ne1, int ne2, int ne3, const float *data) {
    bn_ag_tensor *t;
    if (!g || g->failed) return NULL;
    t = bn__ag_push(g, bn__ag_alloc(ne0, ne1, ne2, ne3, 0), "input");
    if (t && data) memcpy(t->data, data, t->n * sizeof(float));
    return t;
}

static int bn__ag_same_shape(const bn_ag_tensor *a, const bn_ag_tensor *b) {
    return a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3];
}

/* Inputs must exist and the graph must be healthy. */
static int bn__ag_ok(bn_ag_graph *g, const char *op, const bn_ag_tensor *a, const bn_ag_tensor *b) {
    if (!g || g->failed) return 0;
    if (!a || !b) {
        bn__ag_fail(g, BN_ERR_ARG, op, "NULL input");
        return 0;
    }
    return 1;
}

/* ---- blocked matrix product ---------------------------------------------
   B is copied into panels of BN__NR columns (zero padded at the right edge),
   laid out k-major so the inner loop reads it contiguously; a tile of
   BN__MR x BN__NR results stays in registers while k runs. Threads take
   disjoint blocks of MR rows. */
#define BN__MR 4
#define BN__NR 32
#define BN__CHUNK 16

typedef struct bn__gemm_job {
    int M, N, K, accumulate;
    const float *a;
    size_t a_rs, a_cs;
    const float *panels; /* ceil(N / NR) panels of K x NR */
    float *c;
    size_t ldc;
} bn__gemm_job;

static void bn__gemm_tile(const bn__gemm_job *j, int i0, int mr, int p) {
    float acc[BN__MR][BN__NR];
    const float *bp = j->panels + (size_t)p * (size_t)j->K * BN__NR;
    int j0 = p * BN__NR, nr = BN_MIN(BN__NR, j->N - j0), r, k, jj;
    memset(acc, 0, sizeof acc);
    if (mr == BN__MR) {
        for (k = 0; k < j->K; k++) {
            const float *b = bp + (size_t)k * BN__NR;
            const float *ak = j->a + (size_t)k * j->a_cs + (size_t)i0 * j->a_rs;
            float a0 = ak[0], a1 = ak[j->a_rs], a2 = ak[2 * j->a_rs], a3 = ak[3 * j->a_rs];
            for (jj = 0; jj < BN__NR; jj++) {
                acc[0][jj] += a0 * b[jj];
                acc[1][jj] += a1 * b[jj];
                acc[2][jj] += a2 * b[jj];
                acc[3][jj] += a3 * b[jj];
            }
        }
    } else {
        for (r = 0; r < mr; r++)
            for (k = 0; k < j->K; k++) {
                const float *b = bp + (size_t)k * BN__NR;
                float av = j->a[(size_t)(i0 + r) * j->a_rs + (size_t)k * j->a_cs];
                for (jj = 0; jj < BN__NR; jj++) acc[r][jj] += av * b[jj];
            }
    }
    for (r = 0; r < mr; r++) {
        float *c = j->c + (size_t)(i0 + r) * j->ldc + j0;
        if (j->accumulate)
            for (jj = 0; jj < nr; jj++) c[jj] += acc[r][jj];
        else
            for (jj = 0; jj < nr; jj++) c[jj] = acc[r][jj];
    }
}

static void bn__gemm_worker(void *arg, int ith, int nth) {
    const bn__gemm_job *j = (const bn__gemm_job *)arg;
    int n_blocks = (j->M + BN__MR - 1) / BN__MR, n_panels = (j->N + BN__NR - 1) / BN__NR, lo, hi, chunk, blk, p;
    bn_split_range(n_blocks, ith, nth, &lo, &hi);
    /* a chunk of BN__CHUNK row blocks of A and one panel of B stay in cache together */
    for (chunk = lo; chunk < hi; chunk += BN__CHUNK)
        for (p = 0; p < n_panels; p++)
            for (blk = chunk; blk < BN_MIN(hi, chunk + BN__CHUNK); blk++) {
                int i0 = blk * BN__MR;
                bn__gemm_tile(j, i0, BN_MIN(BN__MR, j->M - i0), p);
            }
}

BN_API bn_status bn_ag_gemm(bn_pool *pool, int M, int N, int K, const float *a, size_t a_rs, size_t a_cs, const float *b,
                            size_t b_rs, size_t b_cs, float *c, size_t ldc, int accumulate) {
    int n_panels = (N + BN__NR - 1) / BN__NR, p, k, jj;
    float *panels;
    bn__gemm_job job;
    if (M <= 0 || N <= 0) return BN_OK;
    if (K <= 0) {
        int i, j;
        if (!accumulate)
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) c[(size_t)i * ldc + j] = 0.0f;
        return BN_OK;
    }
    panels = BN_ALLOC(float, (size_t)n_panels * (size_t)K * BN__NR);
    if (!panels) return BN_ERR_NOMEM;
    for (p = 0; p < n_panels; p++)
        for (k = 0; k < K; k++) {
            float *dst = panels + ((size_t)p * (size_t)K + (size_t)k) * BN__NR;
            for (jj = 0; jj < BN__NR; jj++) {
                int j = p * BN__NR + jj;
                dst[jj] = j < N ? b[(size_t)k * b_rs + (size_t)j * b_cs] : 0.0f;
            }
        }
    job.M = M;
    job.N = N;
    job.K = K;
    job.accumulate = accumulate;
    job.a = a;
    job.a_rs = a_rs;
    job.a_cs = a_cs;
    job.panels = panels;
    job.c = c;
    job.ldc = ldc;
    bn_pool_run(pool, bn__gemm_worker, &job);
    BN_FREE(panels);
    return BN_OK;
}

/* ---- matmul ------------------------------------------------------------- */
BN_API bn_ag_tensor *bn_ag_matmul(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *w) {
    int ne[4], K, M, N, B, bi;
    bn_ag_tensor *out;
    if (!bn__ag_ok(g, "matmul", a, w)) return NULL;
    K = a->ne[0];
    M = a->ne[1];
    B = a->ne[2];
    N = w->ne[1];
    if (w->ne[0] != K || (w->ne[2] != B && w->ne[2] != 1) || a->ne[3] != 1 || w->ne[3] != 1)
        return bn__ag_fail(g, BN_ERR_SHAPE, "matmul", "shapes do not match ({K,M,B} x {K,N,B or 1})");
    ne[0] = N;
    ne[1] = M;
    ne[2] = B;
    ne[3] = 1;
    out = bn__ag_node(g, "matmul", BN__AG_MATMUL, ne, a, w, NULL);
    if (!out) return NULL;
    for (bi = 0; bi < B; bi++) {
        const float *ab = a->data + (size_t)bi * K * M;
        const float *wb = w->data + (w->ne[2] == 1 ? 0 : (size_t)bi * K * N);
        if (bn_ag_gemm(g->pool, M, N, K, ab, (size_t)K, 1, wb, 1, (size_t)K, out->data + (size_t)bi * M * N, (size_t)N, 0))
            return bn__ag_fail(g, BN_ERR_NOMEM, "matmul", "out of memory");
    }
    return out;
}

static bn_status bn__ag_matmul_back(bn_ag_graph *g, bn_ag_tensor *out) {
    bn_ag_tensor *a = out->src[0], *w = out->src[1];
    int K = a->ne[0], M = a->ne[1], N = w->ne[1], B = a->ne[2], bi;
    for (bi = 0; bi < B; bi++) {
        const float *dy = out->grad + (size_t)bi * M * N;
        size_t woff = w->ne[2] == 1 ? 0 : (size_t)bi * K * N;
        if (a->grad) /* dA[M x K] += dY[M x N] W[N x K] */
            if (bn_ag_gemm(g->pool, M, K, N, dy, (size_t)N, 1, w->data + woff, (size_t)K, 1, a->grad + (size_t)bi * K * M,
                           (size_t)K, 1))
                return BN_ERR_NOMEM;
        if (w->grad) /* dW[N x K] += dY^T[N x M] A[M x K] */
            if (bn_ag_gemm(g->pool, N, K, M, dy, 1, (size_t)N, a->data + (size_t)bi * K * M, (size_t)K, 1,
                           w->grad + woff, (size_t)K, 1))
                return BN_ERR_NOMEM;
    }
    return BN_OK;
}

/* ---- elementwise -------------------------------------------------------- */
BN_API bn_ag_tensor *bn_ag_add(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *b) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "add", a, b)) return NULL;
    if (!bn__ag_same_shape(a, b)) return bn__ag_fail(g, BN_ERR_SHAPE, "add", "shapes differ");
    out = bn__ag_node(g, "add", BN__AG_ADD, a->ne, a, b, NULL);
    if (!out) return NULL;
    for (i = 0; i < a->n; i++) out->data[i] = a->data[i] + b->data[i];
    return out;
}

BN_API bn_ag_tensor *bn_ag_mul(bn_ag_graph *g, bn_ag_tensor *a, bn_ag_tensor *b) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "mul", a, b)) return NULL;
    if (!bn__ag_same_shape(a, b)) return bn__ag_fail(g, BN_ERR_SHAPE, "mul", "shapes differ");
    out = bn__ag_node(g, "mul", BN__AG_MUL, a->ne, a, b, NULL);
    if (!out) return NULL;
    for (i = 0; i < a->n; i++) out->data[i] = a->data[i] * b->data[i];
    return out;
}

BN_API bn_ag_tensor *bn_ag_scale(bn_ag_graph *g, bn_ag_tensor *a, float s) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "scale", a, a)) return NULL;
    out = bn__ag_node(g, "scale", BN__AG_SCALE, a->ne, a, NULL, NULL);
    if (!out) return NULL;
    out->fparam[0] = s;
    for (i = 0; i < a->n; i++) out->data[i] = a->data[i] * s;
    return out;
}

BN_API bn_ag_tensor *bn_ag_sum(bn_ag_graph *g, bn_ag_tensor *a) {
    static const int one[4] = {1, 1, 1, 1};
    bn_ag_tensor *out;
    double s = 0.0;
    size_t i;
    if (!bn__ag_ok(g, "sum", a, a)) return NULL;
    out = bn__ag_node(g, "sum", BN__AG_SUM, one, a, NULL, NULL);
    if (!out) return NULL;
    for (i = 0; i < a->n; i++) s += a->data[i];
    out->data[0] = (float)s;
    return out;
}

static float bn__relu2(float x) { return x > 0.0f ? x * x : 0.0f; }
static float bn__relu2_grad(float x) { return x > 0.0f ? 2.0f * x : 0.0f; }
static float bn__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static float bn__silu(float x) { return x * bn__sigmoid(x); }
static float bn__silu_grad(float x) {
    float s = bn__sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

BN_API bn_ag_tensor *bn_ag_relu2(bn_ag_graph *g, bn_ag_tensor *x) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "relu2", x, x)) return NULL;
    out = bn__ag_node(g, "relu2", BN__AG_RELU2, x->ne, x, NULL, NULL);
    if (!out) return NULL;
    for (i = 0; i < x->n; i++) out->data[i] = bn__relu2(x->data[i]);
    return out;
}

BN_API bn_ag_tensor *bn_ag_silu(bn_ag_graph *g, bn_ag_tensor *x) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "silu", x, x)) return NULL;
    out = bn__ag_node(g, "silu", BN__AG_SILU, x->ne, x, NULL, NULL);
    if (!out) return NULL;
    for (i = 0; i < x->n; i++) out->data[i] = bn__silu(x->data[i]);
    return out;
}

BN_API bn_ag_tensor *bn_ag_gated(bn_ag_graph *g, bn_ag_tensor *gate, bn_ag_tensor *up, bn_ag_act act) {
    bn_ag_tensor *out;
    size_t i;
    if (!bn__ag_ok(g, "gated", gate, up)) return NULL;
    if (!bn__ag_same_shape(gate, up)) return bn__ag_fail(g, BN_ERR_SHAPE, "gated", "gate and up shapes differ");
    out = bn__ag_node(g, "gated", BN__AG_GATED, gate->ne, gate, up, NULL);
    if (!out) return NULL;
    out->iparam[0] = (int)act;
    for (i = 0; i < gate->n; i++)
        out->data[i] = (act == BN_AG_SILU ? bn__silu(gate->data[i]) : bn__relu2(gate->data[i])) * up->data[i];
    return out;
}

static void bn__ag_elementwise_back(bn_ag_tensor *out) {
    bn_ag_tensor *a = out->src[0], *b = out->src[1];
    const float *dy = out->grad;
    size_t i, n = out->n;
    switch (out->op) {
    case BN__AG_ADD:
        if (a->grad)
            for (i = 0; i < n; i++) a->grad[i] += dy[i];
        if (b->grad)
            for (i = 0; i < n; i++) b->grad[i] += dy[i];
        break;
    case BN__AG_MUL:
        if (a->grad)
            for (i = 0; i < n; i++) a->grad[i] += dy[i] * b->data[i];
        if (b->grad)
            for (i = 0; i < n; i++) b->grad[i] += dy[i] * a->data[i];
        break;
    case BN__AG_SCALE:
        for (i = 0; i < n; i++) a->grad[i] += dy[i] * out->fparam[0];
        break;
    case BN__AG_SUM:
        for (i = 0; i < a->n; i++) a->grad[i] += dy[0];
        break;
    case BN__AG_RELU2:
        for (i = 0; i < n; i++) a->grad[i] += dy[i] * bn__relu2_grad(a->data[i]);
        break;
    case BN__AG_SILU:
        for (i = 0; i < n; i++) a->grad[i] += dy[i] * bn__silu_grad(a->data[i]);
        break;
    case BN__AG_GATED: {
        int silu = out->iparam[0] == BN_AG_SILU;
        for (i = 0; i < n; i++) {
            float x = a->data[i];
            if (a->grad) a->grad[i] += dy[i] * b->data[i] * (silu ? bn__silu_grad(x) : bn__relu2_grad(x));
            if (b->grad) b->grad[i] += dy[i] * (silu ? bn__silu(x) : bn__relu2(x));
        }
        break;
    }
    case BN__AG_STE:
        for (i = 0; i < n; i++) a->grad[i] += dy[i];
        break;
    default: break;
    }
}

/* ---- RMSNorm ------------------------------------------------------------ */
BN_API bn_ag_tensor *bn_ag_rmsnorm(bn_ag_graph *g, bn_ag_tensor *x, bn_ag_tensor *w, float eps) {
    bn_ag_tensor *out;
    int D, rows, r, i;
    if (!bn__ag_ok(g, "rmsnorm", x, w)) return NULL;
    D = x->ne[0];
    rows = (int)(x->n / (size_t)D);
    if ((int)w->n != D) return bn__ag_fail(g, BN_ERR_SHAPE, "rmsnorm", "weight length differs from the row length");
    out = bn__ag_node(g, "rmsnorm", BN__AG_RMSNORM, x->ne, x, w, NULL);
    if (!out) return NULL;
    out->saved = BN_ALLOC(float, rows); /* 1 / rms of each row */
    if (!out->saved) return bn__ag_fail(g, BN_ERR_NOMEM, "rmsnorm", "out of memory");
    for (r = 0; r < rows; r++) {
        const float *xr = x->data + (size_t)r * D;
        float *y = out->data + (size_t)r * D, inv;
        double ss = 0.0;
        for (i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        inv = 1.0f / sqrtf((float)(ss / D) + eps);
        out->saved[r] = inv;
        for (i = 0; i < D; i++) y[i] = w->data[i] * (xr[i] * inv);
    }
    return out;
}

/* y = w * x * inv with inv = (mean(x^2) + eps)^-1/2:
   dx_i = inv * w_i dy_i - inv^3 / D * x_i * sum_j w_j dy_j x_j,  dw_i = sum_rows dy_i x_i inv. */
static void bn__ag_rmsnorm_back(bn_ag_tensor *out) {
    bn_ag_tensor *x = out->src[0], *w = out->src[1];
    int D = x->ne[0], rows = (int)(x->n / (size_t)D), r, i;
    for (r = 0; r < rows; r++) {
        const float *xr = x->data + (size_t)r * D, *dy = out->grad + (size_t)r * D;
        float inv = out->saved[r];
        if (x->grad) {
            float *dx = x->grad + (size_t)r * D, k;
            double dot = 0.0;
            for (i = 0; i < D; i++) dot += (double)w->data[i] * dy[i] * xr[i];
            k = (float)dot * inv * inv * inv / (float)D;
            for (i = 0; i < D; i++) dx[i] += inv * w->data[i] * dy[i] - k * xr[i];
        }
        if (w->grad)
            for (i = 0; i < D; i++) w->grad[i] += dy[i] * xr[i] * inv;
    }
}

/* ---- RoPE --------------------------------------------------------------- */
/* cos/sin tables: for each row t and i < hd/2, angle pos[t] * theta^(-2i/hd), as HF's
   inv_freq = 1 / theta^(arange(0, hd, 2) / hd) in float. */
static void bn__rope_angles(float *cs, const int32_t *pos, int rows, int hd, float theta) {
    int t, i, half = hd / 2;
    for (t = 0; t < rows; t++)
        for (i = 0; i < half; i++) {
            float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
            float ang = (float)pos[t] * inv_freq;
            cs[((size_t)t * half + i) * 2] = cosf(ang);
            cs[((size_t)t * half + i) * 2 + 1] = sinf(ang);
        }
}

/* Rotate each head of each row; sign = +1 forward, -1 for the backward (transpose) rotation. */
static void bn__rope_apply(const float *cs, const float *x, float *y, int rows, int n_head, int hd, float sign, int accumulate) {
    int t, h, i, half = hd / 2;
    for (t = 0; t < rows; t++)
        for (h = 0; h < n_head; h++) {
            const float *xh = x + (size_t)t * n_head * hd + (size_t)h * hd;
            float *yh = y + (size_t)t * n_head * hd + (size_t)h * hd;
            for (i = 0; i < half; i++) {
                float c = cs[((size_t)t * half + i) * 2], s = sign * cs[((size_t)t * half + i) * 2 + 1];
                float x0 = xh[i], x1 = xh[i + half];
                float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
                if (accumulate) {
                    yh[i] += y0;
                    yh[i + half] += y1;
                } else {
                    yh[i] = y0;
                    yh[i + half] = y1;
                }
            }
        }
}

BN_API bn_ag_tensor *bn_ag_rope(bn_ag_graph *g, bn_ag_tensor *x, int n_head, const int32_t *pos, float theta) {
    bn_ag_tensor *out;
    int rows, hd;
    if (!bn__ag_ok(g, "rope", x, x)) return NULL;
    if (n_head <= 0 || x->ne[0] % n_head || (x->ne[0] / n_head) % 2)
        return bn__ag_fail(g, BN_ERR_SHAPE, "rope", "row length is not n_head times an even head_dim");
    rows = (int)(x->n / (size_t)x->ne[0]);
    hd = x->ne[0] / n_head;
    out = bn__ag_node(g, "rope", BN__AG_ROPE, x->ne, x, NULL, NULL);
    if (!out) return NULL;
    out->iparam[0] = n_head;
    out->saved = BN_ALLOC(float, (size_t)rows * hd); /* (cos, sin) pairs */
    if (!out->saved) return bn__ag_fail(g, BN_ERR_NOMEM, "rope", "out of memory");
    bn__rope_angles(out->saved, pos, rows, hd, theta);
    bn__rope_apply(out->saved, x->data, out->data, rows, n_head, hd, 1.0f, 0);
    return out;
}

static void bn__ag_rope_back(bn_ag_tensor *out) {
    bn_ag_tensor *x = out->src[0];
    int n_head = out->iparam[0], rows = (int)(x->n / (size_t)x->ne[0]);
    bn__rope_apply(out->saved, out->grad, x->grad, rows, n_head, x->ne[0] / n_head, -1.0f, 1);
}

/* ---- causal attention with GQA ------------------------------------------
   Per (sequence, head) it is three small matrix products, so it runs on the
   same blocked gemm as matmul (threaded inside):
     scores = Q K^T * scale (the masked upper triangle is computed and dropped),
     P = causal softmax(scores) (kept for backward), O = P V. */
typedef struct bn__attn_dims {
    int n_head, n_kv, hd, seq_len, n_seq;
    size_t qw, kw; /* row strides of q/out and of k/v */
} bn__attn_dims;

static bn__attn_dims bn__attn_dims_of(const bn_ag_tensor *q, int n_head, int n_kv, int seq_len) {
    bn__attn_dims d;
    d.n_head = n_head;
    d.n_kv = n_kv;
    d.hd = q->ne[0] / n_head;
    d.seq_len = seq_len;
    d.n_seq = (int)(q->n / (size_t)q->ne[0]) / seq_len;
    d.qw = (size_t)q->ne[0];
    d.kw = (size_t)n_kv * d.hd;
    return d;
}

/* Where head h of sequence s starts in q (or out), and its kv head in k/v. */
static size_t bn__attn_qoff(const bn__attn_dims *d, int s, int h) { return (size_t)s * d->seq_len * d->qw + (size_t)h * d->hd; }
static size_t bn__attn_koff(const bn__attn_dims *d, int s, int h) {
    return (size_t)s * d->seq_len * d->kw + (size_t)(h / (d->n_head / d->n_kv)) * d->hd;
}

BN_API bn_ag_tensor *bn_ag_attention(bn_ag_graph *g, bn_ag_tensor *q, bn_ag_tensor *k, bn_ag_tensor *v, int n_head,
                                     int n_kv_head, int seq_len) {
    bn_ag_tensor *out;
    bn__attn_dims d;
    int T, s, h, i, j;
    float scale;
    if (!bn__ag_ok(g, "attention", q, k) || !bn__ag_ok(g, "attention", v, v)) return NULL;
    T = (int)(q->n / (size_t)q->ne[0]);
    if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head || q->ne[0] % n_head || seq_len <= 0 || T % seq_len)
        return bn__ag_fail(g, BN_ERR_SHAPE, "attention", "bad head counts or sequence length");
    if (!bn__ag_same_shape(k, v) || k->ne[0] != q->ne[0] / n_head * n_kv_head || (int)(k->n / (size_t)k->ne[0]) != T)
        return bn__ag_fail(g, BN_ERR_SHAPE, "attention", "k/v shapes do not match q");
    out = bn__ag_node(g, "attention", BN__AG_ATTENTION, q->ne, q, k, v);
    if (!out) return NULL;
    out->iparam[0] = n_head;
    out->iparam[1] = n_kv_head;
    out->iparam[2] = seq_len;
    d = bn__attn_dims_of(q, n_head, n_kv_head, seq_len);
    scale = 1.0f / sqrtf((float)d.hd);
    /* P for every (sequence, head): seq_len x seq_len, zero above the diagonal */
    out->saved = BN_ALLOC(float, (size_t)d.n_seq * n_head * seq_len * seq_len);
    if (!out->saved) return bn__ag_fail(g, BN_ERR_NOMEM, "attention", "out of memory for the attention weights");
    for (s = 0; s < d.n_seq; s++)
        for (h = 0; h < n_head; h++) {
            float *P = out->saved + ((size_t)s * n_head + h) * seq_len * seq_len;
            const float *qs = q->data + bn__attn_qoff(&d, s, h), *ks = k->data + bn__attn_koff(&d, s, h);
            const float *vs = v->data + bn__attn_koff(&d, s, h);
            if (bn_ag_gemm(g->pool, seq_len, seq_len, d.hd, qs, d.qw, 1, ks, 1, d.kw, P, (size_t)seq_len, 0))
                return bn__ag_fail(g, BN_ERR_NOMEM, "attention", "out of memory");
            for (i = 0; i < seq_len; i++) {
                float *p = P + (size_t)i * seq_len, mx = -INFINITY, sum = 0.0f;
                for (j = 0; j <= i; j++) mx = BN_MAX(mx, p[j] * scale);
                for (j = 0; j <= i; j++) {
                    p[j] = expf(p[j] * scale - mx);
                    sum += p[j];
                }
                for (j = 0; j <= i; j++) p[j] /= sum;
                for (j = i + 1; j < seq_len; j++) p[j] = 0.0f;
            }
            if (bn_ag_gemm(g->pool, seq_len, d.hd, seq_len, P, (size_t)seq_len, 1, vs, d.kw, 1,
                           out->data + bn__attn_qoff(&d, s, h), d.qw, 0))
                return bn__ag_fail(g, BN_ERR_NOMEM, "attention", "out of memory");
        }
    return out;
}

/* Backward of one (sequence, head), with dO its output grad:
   dV += P^T dO,  dP = dO V^T,  dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij) * scale,
   dQ += dS K,  dK += dS^T Q. Heads run one after another, so heads that share
   a kv head add into dK/dV in turn. */
static bn_status bn__ag_attention_back(bn_ag_graph *g, bn_ag_tensor *out) {
    bn_ag_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    bn__attn_dims d = bn__attn_dims_of(q, out->iparam[0], out->iparam[1], out->iparam[2]);
    int S = d.seq_len, s, h, i, j;
    float scale = 1.0f / sqrtf((float)d.hd);
    float *dS = BN_ALLOC(float, (size_t)S * S);
    bn_status st = BN_OK;
    if (!dS) return BN_ERR_NOMEM;
    for (s = 0; s < d.n_seq && !st; s++)
        for (h = 0; h < d.n_head && !st; h++) {
            const float *P = out->saved + ((size_t)s * d.n_head + h) * S * S;
            size_t qo = bn__attn_qoff(&d, s, h), ko = bn__attn_koff(&d, s, h);
            const float *dO = out->grad + qo;
            if (v->grad) st = bn_ag_gemm(g->pool, S, d.hd, S, P, 1, (size_t)S, dO, d.qw, 1, v->grad + ko, d.kw, 1);
            if (!q->grad && !k->grad) continue;
            if (!st) st = bn_ag_gemm(g->pool, S, S, d.hd, dO, d.qw, 1, v->data + ko, 1, d.kw, dS, (size_t)S, 0);
            for (i = 0; i < S && !st; i++) {
                const float *p = P + (size_t)i * S;
                float *ds = dS + (size_t)i * S, rowdot = 0.0f;
                for (j = 0; j <= i; j++) rowdot += p[j] * ds[j];
                for (j = 0; j <= i; j++) ds[j] = p[j] * (ds[j] - rowdot) * scale;
                for (j = i + 1; j < S; j++) ds[j] = 0.0f;
            }
            if (!st && q->grad) st = bn_ag_gemm(g->pool, S, d.hd, S, dS, (size_t)S, 1, k->data + ko, d.kw, 1, q->grad + qo, d.qw, 1);
            if (!st && k->grad) st = bn_ag_gemm(g->pool, S, d.hd, S, dS, 1, (size_t)S, q->data + qo, d.qw, 1, k->grad + ko, d.kw, 1);
        }
    BN_FREE(dS);
    return st;
}

/* ---- embedding ---------------------------------------------------------- */
BN_API bn_ag_tensor *bn_ag_embed(bn_ag_graph *g, bn_ag_tensor *table, const int32_t *ids, int n) {
    bn_ag_tensor *out;
    int ne[4], i, D;
    if (!bn__ag_ok(g, "embed", table, table)) return NULL;
    if (!ids || n <= 0) return bn__ag_fail(g, BN_ERR_ARG, "embed", "no ids");
    D = table->ne[0];
    for (i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->ne[1]) return bn__ag_fail(g, BN_ERR_ARG, "embed", "token id out of range");
    ne[0] = D;
    ne[1] = n;
    ne[2] = ne[3] = 1;
    out = bn__ag_node(g, "embed", BN__AG_EMBED, ne, table, NULL, NULL);
    if (!out) return NULL;
    out->ids = BN_ALLOC(int32_t, n);
    if (!out->ids) return bn__ag_fail(g, BN_ERR_NOMEM, "embed", "out of memory");
    memcpy(out->ids, ids, sizeof(int32_t) * (size_t)n);
    for (i = 0; i < n; i++) memcpy(out->data + (size_t)i * D, table->data + (size_t)ids[i] * D, sizeof(float) * (size_t)D);
    return out;
}

static void bn__ag_embed_back(bn_ag_tensor *out) {
    bn_ag_tensor *table = out->src[0];
    int D = table->ne[0], n = out->ne[1], i, d;
    for (i = 0; i < n; i++) {
        float *dst = table->grad + (size_t)out->ids[i] * D;
        const float *src = out->grad + (size_t)i * D;
        for (d = 0; d < D; d++) dst[d] += src[d];
    }
}

/* ---- cross-entropy fused with log-softmax -------------------------------- */
BN_API bn_ag_tensor *bn_ag_cross_entropy(bn_ag_graph *g, bn_ag_tensor *logits, const int32_t *targets) {
    static const int one[4] = {1, 1, 1, 1};
    bn_ag_tensor *out;
    int V, T, t, i, n_valid = 0;
    double total = 0.0;
    if (!bn__ag_ok(g, "cross_entropy", logits, logits)) return NULL;
    if (!targets) return bn__ag_fail(g, BN_ERR_ARG, "cross_entropy", "no targets");
    V = logits->ne[0];
    T = (int)(logits->n / (size_t)V);
    for (t = 0; t < T; t++)
        if (targets[t] >= V) return bn__ag_fail(g, BN_ERR_ARG, "cross_entropy", "target id out of range");
    out = bn__ag_node(g, "cross_entropy", BN__AG_CROSS_ENTROPY, one, logits, NULL, NULL);
    if (!out) return NULL;
    out->saved = BN_ALLOC(float, logits->n); /* softmax probabilities */
    out->ids = BN_ALLOC(int32_t, T);
    if (!out->saved || !out->ids) return bn__ag_fail(g, BN_ERR_NOMEM, "cross_entropy", "out of memory");
    memcpy(out->ids, targets, sizeof(int32_t) * (size_t)T);
    for (t = 0; t < T; t++) {
        const float *z = logits->data + (size_t)t * V;
        float *p = out->saved + (size_t)t * V, mx = z[0];
        double sum = 0.0;
        for (i = 1; i < V; i++) mx = BN_MAX(mx, z[i]);
        for (i = 0; i < V; i++) {
            p[i] = expf(z[i] - mx);
            sum += p[i];
        }
        for (i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
        if (targets[t] >= 0) {
            total += log(sum) + mx - z[targets[t]];
            n_valid++;
        }
    }
    out->iparam[0] = n_valid;
    out->data[0] = n_valid ? (float)(total / n_valid) : 0.0f;
    return out;
}

static void bn__ag_cross_entropy_back(bn_ag_tensor *out) {
    bn_ag_tensor *logits = out->src[0];
    int V = logits->ne[0], T = (int)(logits->n / (size_t)V), t, i;
    float k;
    if (!out->iparam[0]) return;
    k = out->grad[0] / (float)out->iparam[0];
    for (t = 0; t < T; t++) {
        const float *p = out->saved + (size_t)t * V;
        float *dz = logits->grad + (size_t)t * V;
        if (out->ids[t] < 0) continue;
        for (i = 0; i < V; i++) dz[i] += k * p[i];
        dz[out->ids[t]] -= k;
    }
}

/* ---- BitNet fake quantization ------------------------------------------- */
BN_API bn_ag_tensor *bn_ag_weight_quant(bn_ag_graph *g, bn_ag_tensor *w) {
    bn_ag_tensor *out;
    int8_t *q;
    float s;
    size_t i;
    if (!bn__ag_ok(g, "weight_quant", w, w)) return NULL;
    out = bn__ag_node(g, "weight_quant", BN__AG_STE, w->ne, w, NULL, NULL);
    if (!out) return NULL;
    q = BN_ALLOC(int8_t, w->n);
    if (!q) return bn__ag_fail(g, BN_ERR_NOMEM, "weight_quant", "out of memory");
    s = bn_ternarize(w->data, w->n, q);
    for (i = 0; i < w->n; i++) out->data[i] = (float)q[i] / s;
    out->fparam[0] = s;
    BN_FREE(q);
    return out;
}

BN_API bn_ag_tensor *bn_ag_act_quant(bn_ag_graph *g, bn_ag_tensor *x) {
    bn_ag_tensor *out;
    int8_t *q;
    int D, rows, r, i;
    if (!bn__ag_ok(g, "act_quant", x, x)) return NULL;
    out = bn__ag_node(g, "act_quant", BN__AG_STE, x->ne, x, NULL, NULL);
    if (!out) return NULL;
    D = x->ne[0];
    rows = (int)(x->n / (size_t)D);
    q = BN_ALLOC(int8_t, D);
    if (!q) return bn__ag_fail(g, BN_ERR_NOMEM, "act_quant", "out of memory");
    for (r = 0; r < rows; r++) { /* the inference path's quantizer, then back to float */
        float *y = out->data + (size_t)r * D;
        float a = bn_quantize_act(x->data + (size_t)r * D, D, q);
        for (i = 0; i < D; i++) y[i] = (float)q[i] / a;
    }
    BN_FREE(q);
    return out;
}

/* ---- backward ----------------------------------------------------------- */
BN_API bn_status bn_ag_backward(bn_ag_graph *g, bn_ag_tensor *loss, bn_error *err) {
    int i;
    if (!g) return bn_errorf(err, BN_ERR_ARG, "bn_ag_backward: NULL graph");
    if (g->failed) return bn_errorf(err, g->err.status, "%s", g->err.msg);
    if (!loss || loss->n != 1) return bn_errorf(err, BN_ERR_ARG, "bn_ag_backward: the loss must be one element");
    if (!loss->requires_grad) return bn_errorf(err, BN_ERR_ARG, "bn_ag_backward: the loss depends on no parameter");
    /* every node on the way gets a zeroed grad (parameters already have theirs) */
    for (i = 0; i < g->n_nodes; i++) {
        bn_ag_tensor *t = g->nodes[i];
        if (t->requires_grad && !t->grad) {
            t->grad = BN_ZALLOC(float, t->n);
            if (!t->grad) return bn_errorf(err, BN_ERR_NOMEM, "bn_ag_backward: out of memory");
        }
    }
    loss->grad[0] += 1.0f;
    for (i = g->n_nodes - 1; i >= 0; i--) {
        bn_ag_tensor *t = g->nodes[i];
        if (!t->requires_grad || t->op == BN__AG_LEAF) continue;
        switch (t->op) {
        case BN__AG_MATMUL:
            if (bn__ag_matmul_back(g, t)) return bn_errorf(err, BN_ERR_NOMEM, "bn_ag_backward: out of memory");
            break;
        case BN__AG_RMSNORM: bn__ag_rmsnorm_back(t); break;
        case BN__AG_ROPE: bn__ag_rope_back(t); break;
        case BN__AG_ATTENTION:
            if (bn__ag_attention_back(g, t)) return bn_errorf(err, BN_ERR_NOMEM, "bn_ag_backward: out of memory");
            break;
        case BN__AG_EMBED: bn__ag_embed_back(t); break;
        case BN__AG_CROSS_ENTROPY: bn__ag_cross_entropy_back(t); break;
        default: bn__ag_elementwise_back(t); break;
        }
    }
    return BN_OK;
}

#endif /* BITNET_NO_TRAIN */
#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_AUTOGRAD_H */
