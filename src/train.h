#ifndef BN_PART_TRAIN_H
#define BN_PART_TRAIN_H
#include "base.h"
#include "json.h"
#include "threads.h"
#include "safetensors.h"
#include "model.h"
#include "ternary_matmul.h"
#include "autograd.h"
/* Quantization-aware training of a small BitNet b1.58 model (HF's
   BitNetForCausalLM: relu2 gated FFN, attn_sub_norm / ffn_sub_norm, GQA,
   RoPE), with AdamW, and saving it in the HF layout that inference loads.

   The training forward is the inference forward with fake quantization: every
   *_proj linear is bn_ag_matmul(bn_ag_act_quant(x), bn_ag_weight_quant(W)),
   which computes exactly what HF's BitLinear computes from the packed ternary
   weights (y = (q_x . q_W) / (a * s)), while the gradient flows straight
   through the rounding to the float master weights W.

   bn_train_save_hf writes config.json, model.safetensors (packed uint8 codes
   [out/4, in] + weight_scale = s = 1/mean|W| as HF BitLinear reads them; norms
   and embeddings as F32, so nothing is rounded on the way) and
   generation_config.json. A checkpoint (master weights + AdamW state + step)
   is one .safetensors file that bn_train_checkpoint_load resumes from.

   The model's shape is a bn_config, the struct a loaded model reports: what
   training writes to config.json (bn_config_to_json) is what inference reads
   back (bn_config_parse). Training builds the bitnet architecture (relu2,
   sub-norms) with head_dim = hidden_size / n_heads. */

#ifndef BITNET_NO_TRAIN /* training compiled out: none of what follows */

/* The parameters of one decoder layer (HF names in bn_train_model.names). */
typedef struct bn_train_layer {
    bn_ag_tensor *input_norm, *q, *k, *v, *o, *attn_sub_norm;
    bn_ag_tensor *post_norm, *gate, *up, *down, *ffn_sub_norm;
} bn_train_layer;

#define BN_TRAIN_NAME_MAX 64

typedef struct bn_train_model {
    bn_config cfg;      /* arch bitnet, head_dim set */
    bn_ag_tensor *embed, *norm, *lm_head; /* lm_head is NULL when tied */
    bn_train_layer *layers;
    int n_params;
    bn_ag_tensor **params;            /* every parameter, in a fixed order */
    char (*names)[BN_TRAIN_NAME_MAX]; /* their HF tensor names */
} bn_train_model;

typedef struct bn_adamw {
    float beta1, beta2, eps, weight_decay; /* decay applies to matrices only, not to norm weights */
    int64_t step;
    int n;
    float **m, **v; /* first and second moments, one buffer per parameter */
} bn_adamw;

BN_EXTERN_C_BEGIN
/* A small default: 4 layers of 256, 4 heads / 2 kv heads, FFN 640, vocab 1024,
   context 256, no BOS or end token. head_dim 0: hidden_size / n_heads. */
BN_API bn_config bn_train_default_config(void);
/* Random initialization (normal, std 0.02; norms 1), reproducible from seed. */
BN_API bn_status bn_train_model_new(bn_train_model **out, const bn_config *cfg, uint64_t seed, bn_error *err);
BN_API void bn_train_model_free(bn_train_model *m);
BN_API size_t bn_train_model_n_weights(const bn_train_model *m); /* number of trained floats */

/* Forward n_seq sequences of seq_len tokens each (positions 0..seq_len-1).
   *logits (if not NULL) gets the {vocab, n_seq * seq_len} logits. Returns the
   mean cross-entropy against targets (same layout, -1 = skip), or the logits
   when targets is NULL. NULL on error: see bn_ag_graph_error(g). */
BN_API bn_ag_tensor *bn_train_forward(bn_train_model *m, bn_ag_graph *g, const int32_t *tokens, int n_seq, int seq_len,
                                      const int32_t *targets, bn_ag_tensor **logits);
/* Mean next-token loss (nats) over the tokens, cut into non-overlapping
   windows of seq_len (each window predicts its tokens 2..seq_len, as HF's
   loss over input_ids = labels); *n_predicted gets the number of predictions. */
BN_API bn_status bn_train_eval(bn_train_model *m, bn_pool *pool, const int32_t *tokens, size_t n_tokens, int seq_len,
                               double *mean_nats, size_t *n_predicted, bn_error *err);

BN_API void bn_train_zero_grad(bn_train_model *m);
/* Scale every gradient so that their global L2 norm is at most max_norm; returns the norm before. */
BN_API float bn_train_clip_grad_norm(bn_train_model *m, float max_norm);
/* Linear warmup to max_lr over `warmup` steps, then cosine decay to min_lr at `total`. */
BN_API float bn_train_lr(int64_t step, int64_t warmup, int64_t total, float max_lr, float min_lr);

BN_API bn_status bn_adamw_init(bn_adamw *opt, const bn_train_model *m, float beta1, float beta2, float eps,
                               float weight_decay, bn_error *err);
BN_API void bn_adamw_step(bn_adamw *opt, bn_train_model *m, float lr);
BN_API void bn_adamw_free(bn_adamw *opt);

/* The HF model folder: config.json, model.safetensors, generation_config.json
   (the folder must exist; tokenizer files are the tokenizer trainer's job). */
BN_API bn_status bn_train_save_hf(const bn_train_model *m, const char *dir, bn_error *err);
/* Pack a ternary [rows x cols] matrix as HF's BitLinear stores it: uint8
   [rows/4, cols], byte (r, c) holds value+1 of rows r + i*rows/4 in bits 2i, 2i+1. */
BN_API bn_status bn_train_pack_ternary(const int8_t *q, int rows, int cols, uint8_t *packed, bn_error *err);
BN_API bn_status bn_train_checkpoint_save(const bn_train_model *m, const bn_adamw *opt, const char *path, bn_error *err);
/* Set the weights from float tensors with the HF names (e.g. an HF "master"
   checkpoint with unquantized bf16/f32 weights: a file, a folder or a shard
   index): to fine-tune, or to compare the training forward with HF's. */
BN_API bn_status bn_train_model_load_weights(bn_train_model *m, const char *path, bn_error *err);
/* Rebuild model and optimizer from a checkpoint (opt may be NULL). */
BN_API bn_status bn_train_checkpoint_load(bn_train_model **m, bn_adamw *opt, const char *path, bn_error *err);
BN_EXTERN_C_END


#endif /* BITNET_NO_TRAIN */
#ifdef BITNET_IMPLEMENTATION
#ifndef BITNET_NO_TRAIN

BN_API bn_config bn_train_default_config(void) {
    bn_config c;
    memset(&c, 0, sizeof c);
    c.arch = BN_ARCH_BITNET;
    c.act = BN_ACT_RELU2;
    c.variant = BN_WEIGHTS_BITLINEAR; /* what bn_train_save_hf writes */
    c.has_sub_norms = 1;
    c.vocab_size = 1024;
    c.hidden_size = 256;
    c.intermediate_size = 640;
    c.n_layers = 4;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.max_seq_len = 256;
    c.rope_theta = 10000.0f;
    c.rms_norm_eps = 1e-5f;
    c.tie_word_embeddings = 1;
    c.bos_token_id = -1;
    return c;
}

static bn_status bn__train_check_config(const bn_config *c, bn_error *err) {
    if (c->arch != BN_ARCH_BITNET || c->act != BN_ACT_RELU2 || !c->has_sub_norms)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "train config: training builds the bitnet architecture (relu2, "
                                                  "sub-norms); start from bn_train_default_config()");
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->max_seq_len <= 0)
        return bn_errorf(err, BN_ERR_CONFIG, "train config: sizes must be positive");
    if (c->hidden_size % c->n_heads || c->n_heads % c->n_kv_heads || (c->hidden_size / c->n_heads) % 2)
        return bn_errorf(err, BN_ERR_CONFIG, "train config: hidden_size %d must split into %d heads of even size, "
                         "and the heads into %d kv groups", c->hidden_size, c->n_heads, c->n_kv_heads);
    if (c->hidden_size % 4 || c->intermediate_size % 4)
        return bn_errorf(err, BN_ERR_CONFIG, "train config: hidden and intermediate sizes must be multiples of 4 "
                         "(HF packs 4 rows per byte)");
    if (c->head_dim != 0 && c->head_dim != c->hidden_size / c->n_heads)
        return bn_errorf(err, BN_ERR_CONFIG, "train config: head_dim %d must be 0 or hidden_size / n_heads = %d",
                         c->head_dim, c->hidden_size / c->n_heads);
    if (c->n_eos < 0 || c->n_eos > BN_MAX_EOS) return bn_errorf(err, BN_ERR_CONFIG, "train config: n_eos %d", c->n_eos);
    return BN_OK;
}

/* xorshift64* and Box-Muller: the initializer's own random stream. */
static uint64_t bn__train_rand_u64(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static float bn__train_randn(uint64_t *s) {
    double u1 = ((double)(bn__train_rand_u64(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(bn__train_rand_u64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Create a parameter, register it under its HF name and fill it. */
static bn_ag_tensor *bn__train_add(bn_train_model *m, const char *name, int ne0, int ne1, float std, uint64_t *rng) {
    bn_ag_tensor *t = bn_ag_param_new(ne0, ne1, 1, 1);
    size_t i;
    if (!t) return NULL;
    for (i = 0; i < t->n; i++) t->data[i] = std > 0.0f ? std * bn__train_randn(rng) : 1.0f;
    m->params[m->n_params] = t;
    snprintf(m->names[m->n_params], BN_TRAIN_NAME_MAX, "%s", name);
    m->n_params++;
    return t;
}

/* The floats bn_train_model_new allocates for a config's weights (the same
   sum as bn_train_model_n_weights of the model it makes), in double: no overflow. */
static double bn__train_n_weights(const bn_config *c) {
    double D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    double KVD = (double)(c->hidden_size / c->n_heads) * c->n_kv_heads;
    double layer = 3 * D + 2 * D * D + 2 * D * KVD + 3 * D * F + F; /* 3 norms, q o, k v, gate up down, ffn norm */
    return V * D * (c->tie_word_embeddings ? 1 : 2) + c->n_layers * layer + D;
}

BN_API bn_status bn_train_model_new(bn_train_model **out, const bn_config *cfg, uint64_t seed, bn_error *err) {
    bn_train_model *m;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1442695040888963407ull;
    int D, F, KVD, L, i, max_params;
    char name[BN_TRAIN_NAME_MAX];
    bn_status st;
    *out = NULL;
    if ((st = bn__train_check_config(cfg, err))) return st;
    D = cfg->hidden_size;
    F = cfg->intermediate_size;
    KVD = D / cfg->n_heads * cfg->n_kv_heads;
    L = cfg->n_layers;
    max_params = 3 + 11 * L;
    m = BN_ZALLOC(bn_train_model, 1);
    if (!m) return bn_errorf(err, BN_ERR_NOMEM, "bn_train_model_new: out of memory");
    m->cfg = *cfg;
    m->cfg.head_dim = D / cfg->n_heads;
    m->cfg.variant = BN_WEIGHTS_BITLINEAR;
    m->layers = BN_ZALLOC(bn_train_layer, L);
    m->params = BN_ZALLOC(bn_ag_tensor *, max_params);
    m->names = (char(*)[BN_TRAIN_NAME_MAX])bn__zalloc(sizeof(*m->names) * (size_t)max_params);
    if (!m->layers || !m->params || !m->names) goto nomem;
    if (!(m->embed = bn__train_add(m, "model.embed_tokens.weight", D, cfg->vocab_size, 0.02f, &rng))) goto nomem;
    for (i = 0; i < L; i++) {
        bn_train_layer *l = &m->layers[i];
#define BN__TRAIN_P(field, suffix, ne0, ne1, std)                                  \
    snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);                \
    if (!(l->field = bn__train_add(m, name, ne0, ne1, std, &rng))) goto nomem;
        BN__TRAIN_P(input_norm, "input_layernorm.weight", D, 1, 0.0f)
        BN__TRAIN_P(q, "self_attn.q_proj.weight", D, D, 0.02f)
        BN__TRAIN_P(k, "self_attn.k_proj.weight", D, KVD, 0.02f)
        BN__TRAIN_P(v, "self_attn.v_proj.weight", D, KVD, 0.02f)
        BN__TRAIN_P(attn_sub_norm, "self_attn.attn_sub_norm.weight", D, 1, 0.0f)
        BN__TRAIN_P(o, "self_attn.o_proj.weight", D, D, 0.02f)
        BN__TRAIN_P(post_norm, "post_attention_layernorm.weight", D, 1, 0.0f)
        BN__TRAIN_P(gate, "mlp.gate_proj.weight", D, F, 0.02f)
        BN__TRAIN_P(up, "mlp.up_proj.weight", D, F, 0.02f)
        BN__TRAIN_P(ffn_sub_norm, "mlp.ffn_sub_norm.weight", F, 1, 0.0f)
        BN__TRAIN_P(down, "mlp.down_proj.weight", F, D, 0.02f)
#undef BN__TRAIN_P
    }
    if (!(m->norm = bn__train_add(m, "model.norm.weight", D, 1, 0.0f, &rng))) goto nomem;
    if (!cfg->tie_word_embeddings && !(m->lm_head = bn__train_add(m, "lm_head.weight", D, cfg->vocab_size, 0.02f, &rng)))
        goto nomem;
    *out = m;
    return BN_OK;
nomem:
    bn_train_model_free(m);
    return bn_errorf(err, BN_ERR_NOMEM, "bn_train_model_new: out of memory");
}

BN_API void bn_train_model_free(bn_train_model *m) {
    int i;
    if (!m) return;
    for (i = 0; i < m->n_params; i++) bn_ag_param_free(m->params[i]);
    BN_FREE(m->params);
    BN_FREE(m->names);
    BN_FREE(m->layers);
    BN_FREE(m);
}

BN_API size_t bn_train_model_n_weights(const bn_train_model *m) {
    size_t n = 0;
    int i;
    for (i = 0; i < m->n_params; i++) n += m->params[i]->n;
    return n;
}

/* ---- forward ------------------------------------------------------------ */
/* A BitLinear on already-quantized activations xq. */
static bn_ag_tensor *bn__train_bitlinear(bn_ag_graph *g, bn_ag_tensor *xq, bn_ag_tensor *w) {
    return bn_ag_matmul(g, xq, bn_ag_weight_quant(g, w));
}

BN_API bn_ag_tensor *bn_train_forward(bn_train_model *m, bn_ag_graph *g, const int32_t *tokens, int n_seq, int seq_len,
                                      const int32_t *targets, bn_ag_tensor **logits) {
    const bn_config *c = &m->cfg;
    int T = n_seq * seq_len, i;
    int32_t *pos;
    bn_ag_tensor *x, *out;
    if (logits) *logits = NULL;
    if (n_seq <= 0 || seq_len <= 0 || seq_len > c->max_seq_len)
        return bn_ag_graph_fail(g, BN_ERR_ARG, "bn_train_forward: bad n_seq or seq_len (longer than max_seq_len?)");
    pos = BN_ALLOC(int32_t, T);
    if (!pos) return bn_ag_graph_fail(g, BN_ERR_NOMEM, "bn_train_forward: out of memory");
    for (i = 0; i < T; i++) pos[i] = i % seq_len;
    x = bn_ag_embed(g, m->embed, tokens, T);
    for (i = 0; i < c->n_layers; i++) {
        const bn_train_layer *l = &m->layers[i];
        bn_ag_tensor *h, *hq, *q, *k, *v, *a, *f, *fq;
        /* attention block */
        h = bn_ag_rmsnorm(g, x, l->input_norm, c->rms_norm_eps);
        hq = bn_ag_act_quant(g, h); /* q, k and v share the quantized input */
        q = bn_ag_rope(g, bn__train_bitlinear(g, hq, l->q), c->n_heads, pos, c->rope_theta);
        k = bn_ag_rope(g, bn__train_bitlinear(g, hq, l->k), c->n_kv_heads, pos, c->rope_theta);
        v = bn__train_bitlinear(g, hq, l->v);
        a = bn_ag_attention(g, q, k, v, c->n_heads, c->n_kv_heads, seq_len);
        a = bn_ag_rmsnorm(g, a, l->attn_sub_norm, c->rms_norm_eps);
        x = bn_ag_add(g, x, bn__train_bitlinear(g, bn_ag_act_quant(g, a), l->o));
        /* feed-forward block: down(ffn_sub_norm(relu(gate h)^2 * up h)) */
        h = bn_ag_rmsnorm(g, x, l->post_norm, c->rms_norm_eps);
        hq = bn_ag_act_quant(g, h);
        f = bn_ag_gated(g, bn__train_bitlinear(g, hq, l->gate), bn__train_bitlinear(g, hq, l->up), BN_AG_RELU2);
        fq = bn_ag_act_quant(g, bn_ag_rmsnorm(g, f, l->ffn_sub_norm, c->rms_norm_eps));
        x = bn_ag_add(g, x, bn__train_bitlinear(g, fq, l->down));
    }
    BN_FREE(pos);
    x = bn_ag_rmsnorm(g, x, m->norm, c->rms_norm_eps);
    out = bn_ag_matmul(g, x, m->lm_head ? m->lm_head : m->embed); /* the head is not quantized */
    if (logits) *logits = out;
    if (!targets) return out;
    return bn_ag_cross_entropy(g, out, targets);
}

BN_API bn_status bn_train_eval(bn_train_model *m, bn_pool *pool, const int32_t *tokens, size_t n_tokens, int seq_len,
                               double *mean_nats, size_t *n_predicted, bn_error *err) {
    enum { WINDOWS_PER_PASS = 8 };
    bn_ag_graph *g = bn_ag_graph_new(pool);
    int32_t *targets = BN_ALLOC(int32_t, (size_t)WINDOWS_PER_PASS * seq_len);
    double total = 0.0;
    size_t count = 0, start = 0;
    bn_status st = BN_OK;
    *mean_nats = 0.0;
    *n_predicted = 0;
    if (!g || !targets) {
        bn_ag_graph_free(g);
        BN_FREE(targets);
        return bn_errorf(err, BN_ERR_NOMEM, "bn_train_eval: out of memory");
    }
    while (start + 1 < n_tokens) {
        /* up to WINDOWS_PER_PASS full windows at once; a last short window alone */
        size_t left = n_tokens - start;
        int len = left >= (size_t)seq_len ? seq_len : (int)left;
        int n_win = len == seq_len ? (int)BN_MIN((size_t)WINDOWS_PER_PASS, left / (size_t)seq_len) : 1, w, t;
        bn_ag_tensor *loss;
        for (w = 0; w < n_win; w++)
            for (t = 0; t < len; t++)
                targets[w * len + t] = t + 1 < len ? tokens[start + (size_t)w * len + (size_t)t + 1] : -1;
        loss = bn_train_forward(m, g, tokens + start, n_win, len, targets, NULL);
        if (!loss) {
            st = bn_errorf(err, bn_ag_graph_error(g) ? bn_ag_graph_error(g)->status : BN_ERR_ARG, "bn_train_eval: %s",
                           bn_ag_graph_error(g) ? bn_ag_graph_error(g)->msg : "bad window");
            break;
        }
        total += (double)loss->data[0] * (double)(n_win * (len - 1));
        count += (size_t)n_win * (size_t)(len - 1);
        start += (size_t)n_win * (size_t)len;
        bn_ag_graph_reset(g);
    }
    bn_ag_graph_free(g);
    BN_FREE(targets);
    if (!st && count) *mean_nats = total / (double)count;
    *n_predicted = count;
    return st;
}

/* ---- optimization ------------------------------------------------------- */
BN_API void bn_train_zero_grad(bn_train_model *m) {
    int i;
    for (i = 0; i < m->n_params; i++) bn_ag_zero_grad(m->params[i]);
}

BN_API float bn_train_clip_grad_norm(bn_train_model *m, float max_norm) {
    double ss = 0.0;
    float norm;
    int i;
    size_t j;
    for (i = 0; i < m->n_params; i++)
        for (j = 0; j < m->params[i]->n; j++) ss += (double)m->params[i]->grad[j] * m->params[i]->grad[j];
    norm = (float)sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        float k = max_norm / (norm + 1e-6f);
        for (i = 0; i < m->n_params; i++)
            for (j = 0; j < m->params[i]->n; j++) m->params[i]->grad[j] *= k;
    }
    return norm;
}

BN_API float bn_train_lr(int64_t step, int64_t warmup, int64_t total, float max_lr, float min_lr) {
    double progress;
    if (step < warmup) return max_lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return min_lr;
    progress = (double)(step - warmup) / (double)BN_MAX(total - warmup, 1);
    return min_lr + (max_lr - min_lr) * (float)(0.5 * (1.0 + cos(3.141592653589793 * progress)));
}

BN_API bn_status bn_adamw_init(bn_adamw *opt, const bn_train_model *m, float beta1, float beta2, float eps,
                               float weight_decay, bn_error *err) {
    int i;
    memset(opt, 0, sizeof *opt);
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
    opt->n = m->n_params;
    opt->m = BN_ZALLOC(float *, m->n_params);
    opt->v = BN_ZALLOC(float *, m->n_params);
    if (!opt->m || !opt->v) goto nomem;
    for (i = 0; i < m->n_params; i++) {
        opt->m[i] = BN_ZALLOC(float, m->params[i]->n);
        opt->v[i] = BN_ZALLOC(float, m->params[i]->n);
        if (!opt->m[i] || !opt->v[i]) goto nomem;
    }
    return BN_OK;
nomem:
    bn_adamw_free(opt);
    return bn_errorf(err, BN_ERR_NOMEM, "bn_adamw_init: out of memory");
}

BN_API void bn_adamw_step(bn_adamw *opt, bn_train_model *m, float lr) {
    double bc1, bc2;
    int i;
    opt->step++;
    bc1 = 1.0 - pow((double)opt->beta1, (double)opt->step);
    bc2 = 1.0 - pow((double)opt->beta2, (double)opt->step);
    for (i = 0; i < m->n_params && i < opt->n; i++) {
        bn_ag_tensor *p = m->params[i];
        float *mo = opt->m[i], *ve = opt->v[i];
        /* decoupled weight decay on matrices; norm weights (one row) are not decayed */
        float decay = p->ne[1] > 1 ? 1.0f - lr * opt->weight_decay : 1.0f;
        float step_size = (float)(lr / bc1), vscale = (float)(1.0 / sqrt(bc2));
        size_t j;
        for (j = 0; j < p->n; j++) {
            float gj = p->grad[j];
            mo[j] = opt->beta1 * mo[j] + (1.0f - opt->beta1) * gj;
            ve[j] = opt->beta2 * ve[j] + (1.0f - opt->beta2) * gj * gj;
            p->data[j] = p->data[j] * decay - step_size * mo[j] / (sqrtf(ve[j]) * vscale + opt->eps);
        }
    }
}

BN_API void bn_adamw_free(bn_adamw *opt) {
    int i;
    if (!opt) return;
    for (i = 0; i < opt->n; i++) {
        if (opt->m) BN_FREE(opt->m[i]);
        if (opt->v) BN_FREE(opt->v[i]);
    }
    BN_FREE(opt->m);
    BN_FREE(opt->v);
    memset(opt, 0, sizeof *opt);
}

/* ---- saving in the HF layout ------------------------------------------- */
BN_API bn_status bn_train_pack_ternary(const int8_t *q, int rows, int cols, uint8_t *packed, bn_error *err) {
    int r, c, i, prow = rows / 4;
    if (rows <= 0 || cols <= 0 || rows % 4)
        return bn_errorf(err, BN_ERR_SHAPE, "bn_train_pack_ternary: %d rows are not a multiple of 4", rows);
    for (r = 0; r < prow; r++)
        for (c = 0; c < cols; c++) {
            unsigned b = 0;
            for (i = 0; i < 4; i++) {
                int v = q[(size_t)(r + i * prow) * cols + c];
                if (v < -1 || v > 1) return bn_errorf(err, BN_ERR_ARG, "bn_train_pack_ternary: value %d is not ternary", v);
                b |= (unsigned)(v + 1) << (2 * i);
            }
            packed[(size_t)r * cols + c] = (uint8_t)b;
        }
    return BN_OK;
}

/* Is parameter i a quantized linear (a *_proj weight)? */
static int bn__train_is_proj(const bn_train_model *m, int i) { return strstr(m->names[i], "_proj.weight") != NULL; }

/* Write text to DIR/name. */
static bn_status bn__train_write_text(const char *dir, const char *name, const char *text, size_t len, bn_error *err) {
    char *path = bn__path_join(dir, name);
    FILE *f = path ? fopen(path, "wb") : NULL;
    bn_status st = BN_OK;
    if (!f) {
        st = bn_errorf(err, path ? BN_ERR_IO : BN_ERR_NOMEM, "%s: cannot write", path ? path : dir);
    } else {
        int bad = fwrite(text, 1, len, f) != len;
        if (fclose(f) != 0) bad = 1;
        if (bad) st = bn_errorf(err, BN_ERR_IO, "%s: write failed", path);
    }
    BN_FREE(path);
    return st;
}

/* config.json (bn_config_to_json) and generation_config.json (the tokens, sampling defaults). */
static bn_status bn__train_write_config(const bn_train_model *m, const char *dir, bn_error *err) {
    char *json = NULL;
    size_t len = 0;
    bn__sbuf gen;
    bn_status st = bn_config_to_json(&m->cfg, &json, &len, err);
    if (!st) st = bn__train_write_text(dir, "config.json", json, len, err);
    BN_FREE(json);
    memset(&gen, 0, sizeof gen);
    bn__sbuf_str(&gen, "{\n");
    bn__cfg_write_tokens(&gen, &m->cfg);
    bn__sbuf_str(&gen, "  \"do_sample\": true,\n  \"temperature\": 0.8,\n  \"top_p\": 0.95\n}\n");
    if (!st && gen.oom) st = bn_errorf(err, BN_ERR_NOMEM, "generation_config.json: out of memory");
    if (!st) st = bn__train_write_text(dir, "generation_config.json", gen.s, gen.len, err);
    BN_FREE(gen.s);
    return st;
}

BN_API bn_status bn_train_save_hf(const bn_train_model *m, const char *dir, bn_error *err) {
    static const char *const metadata[] = {"format", "pt", NULL};
    int n = m->n_params, i, k = 0;
    bn_safetensors_tensor *ts = BN_ZALLOC(bn_safetensors_tensor, 2 * n);
    void **bufs = BN_ZALLOC(void *, 2 * n);
    char (*scale_names)[BN_TRAIN_NAME_MAX + 8] = (char(*)[BN_TRAIN_NAME_MAX + 8])bn__zalloc(sizeof(*scale_names) * (size_t)n);
    char *path = bn__path_join(dir, "model.safetensors");
    bn_status st = BN_OK;
    if (!ts || !bufs || !scale_names || !path) {
        st = bn_errorf(err, BN_ERR_NOMEM, "bn_train_save_hf: out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        const bn_ag_tensor *p = m->params[i];
        bn_safetensors_tensor *t = &ts[k++];
        t->name = m->names[i];
        if (bn__train_is_proj(m, i)) {
            int rows = p->ne[1], cols = p->ne[0];
            int8_t *q = BN_ALLOC(int8_t, p->n);
            uint8_t *packed = BN_ALLOC(uint8_t, p->n / 4);
            float *scale = BN_ALLOC(float, 1);
            bufs[2 * i] = packed;
            bufs[2 * i + 1] = scale;
            if (!q || !packed || !scale) {
                BN_FREE(q);
                st = bn_errorf(err, BN_ERR_NOMEM, "bn_train_save_hf: out of memory");
                goto done;
            }
            *scale = bn_ternarize(p->data, p->n, q); /* s = 1/mean|W|: BitLinear divides by it */
            st = bn_train_pack_ternary(q, rows, cols, packed, err);
            BN_FREE(q);
            if (st) goto done;
            t->dtype = BN_DTYPE_U8;
            t->n_dims = 2;
            t->shape[0] = rows / 4;
            t->shape[1] = cols;
            t->data = packed;
            snprintf(scale_names[i], sizeof scale_names[i], "%.*s_scale", BN_TRAIN_NAME_MAX - 1, m->names[i]);
            t = &ts[k++];
            t->name = scale_names[i];
            t->dtype = BN_DTYPE_F32;
            t->n_dims = 1;
            t->shape[0] = 1;
            t->data = scale;
        } else {
            t->dtype = BN_DTYPE_F32;
            t->n_dims = p->ne[1] > 1 ? 2 : 1;
            t->shape[0] = p->ne[1] > 1 ? p->ne[1] : p->ne[0];
            t->shape[1] = p->ne[0];
            t->data = p->data;
        }
    }
    st = bn_safetensors_write(path, ts, k, metadata, err);
    if (!st) st = bn__train_write_config(m, dir, err);
done:
    if (bufs)
        for (i = 0; i < 2 * n; i++) BN_FREE(bufs[i]);
    BN_FREE(bufs);
    BN_FREE(ts);
    BN_FREE(scale_names);
    BN_FREE(path);
    return st;
}

/* ---- checkpoints -------------------------------------------------------- */
/* Tensors: every parameter under its HF name, "adam_m.<name>", "adam_v.<name>" (F32);
   metadata: "config" (the model's config.json, bn_config_to_json) and "step". */
BN_API bn_status bn_train_checkpoint_save(const bn_train_model *m, const bn_adamw *opt, const char *path, bn_error *err) {
    char *config = NULL, step[32];
    const char *metadata[5];
    int n = m->n_params, per = opt ? 3 : 1, i, k = 0;
    bn_safetensors_tensor *ts = BN_ZALLOC(bn_safetensors_tensor, per * n);
    char (*names)[BN_TRAIN_NAME_MAX + 8] = (char(*)[BN_TRAIN_NAME_MAX + 8])bn__zalloc(sizeof(*names) * (size_t)(per * n));
    bn_status st;
    if (!ts || !names) {
        BN_FREE(ts);
        BN_FREE(names);
        return bn_errorf(err, BN_ERR_NOMEM, "bn_train_checkpoint_save: out of memory");
    }
    if ((st = bn_config_to_json(&m->cfg, &config, NULL, err))) {
        BN_FREE(ts);
        BN_FREE(names);
        return st;
    }
    snprintf(step, sizeof step, "%lld", opt ? (long long)opt->step : 0LL);
    metadata[0] = "config";
    metadata[1] = config;
    metadata[2] = "step";
    metadata[3] = step;
    metadata[4] = NULL;
    for (i = 0; i < n; i++) {
        int j;
        for (j = 0; j < per; j++) {
            bn_safetensors_tensor *t = &ts[k];
            const bn_ag_tensor *p = m->params[i];
            snprintf(names[k], sizeof names[k], "%s%.*s", j == 0 ? "" : j == 1 ? "adam_m." : "adam_v.",
                     BN_TRAIN_NAME_MAX - 1, m->names[i]);
            t->name = names[k];
            t->dtype = BN_DTYPE_F32;
            t->n_dims = 1;
            t->shape[0] = (int64_t)p->n;
            t->data = j == 0 ? p->data : j == 1 ? opt->m[i] : opt->v[i];
            k++;
        }
    }
    st = bn_safetensors_write(path, ts, k, metadata, err);
    BN_FREE(config);
    BN_FREE(ts);
    BN_FREE(names);
    return st;
}

static bn_status bn__train_read_into(const bn_safetensors *sf, const char *name, float *dst, size_t n, const char *path,
                                     bn_error *err) {
    const bn_safetensors_tensor *t = bn_safetensors_find(sf, name);
    if (!t) return bn_errorf(err, BN_ERR_MISSING, "%s: tensor %s is missing", path, name);
    if ((t->dtype != BN_DTYPE_F32 && t->dtype != BN_DTYPE_BF16 && t->dtype != BN_DTYPE_F16) ||
        bn_safetensors_numel(t) != (int64_t)n)
        return bn_errorf(err, BN_ERR_SHAPE, "%s: tensor %s is not a float tensor of %lu elements", path, name,
                         (unsigned long)n);
    return bn_safetensors_read_f32(t, dst, err);
}

BN_API bn_status bn_train_model_load_weights(bn_train_model *m, const char *path, bn_error *err) {
    bn_safetensors *sf = NULL;
    bn_status st;
    int i;
    if ((st = bn_safetensors_load(&sf, path, err))) return st;
    for (i = 0; !st && i < m->n_params; i++)
        st = bn__train_read_into(sf, m->names[i], m->params[i]->data, m->params[i]->n, path, err);
    bn_safetensors_free(sf);
    return st;
}

/* Values held by every tensor of a file (the most its weights can number). */
static uint64_t bn__safetensors_n_elements(const bn_safetensors *sf) {
    uint64_t n = 0;
    int i;
    for (i = 0; i < sf->n_tensors; i++) n += (uint64_t)bn_safetensors_numel(&sf->tensors[i]);
    return n;
}

BN_API bn_status bn_train_checkpoint_load(bn_train_model **out, bn_adamw *opt, const char *path, bn_error *err) {
    bn_safetensors *sf = NULL;
    bn_train_model *m = NULL;
    bn_config c;
    const char *config, *step;
    char name[BN_TRAIN_NAME_MAX + 8];
    bn_status st;
    int i;
    *out = NULL;
    if (opt) memset(opt, 0, sizeof *opt);
    if ((st = bn_safetensors_load(&sf, path, err))) return st;
    config = bn_safetensors_metadata(sf, "config");
    step = bn_safetensors_metadata(sf, "step");
    if (!config || !step) {
        bn_safetensors_free(sf);
        return bn_errorf(err, BN_ERR_MISSING, "%s: not a training checkpoint (no config/step metadata)", path);
    }
    if ((st = bn_config_parse(&c, config, NULL, path, err))) {
        bn_safetensors_free(sf);
        return st;
    }
    /* the sizes come from the file: it must hold the weights they imply before they are allocated */
    if (bn__train_n_weights(&c) > (double)bn__safetensors_n_elements(sf)) {
        st = bn_errorf(err, BN_ERR_SHAPE, "%s: the config's sizes need %.0f weights but the file holds %llu values",
                       path, bn__train_n_weights(&c), (unsigned long long)bn__safetensors_n_elements(sf));
        bn_safetensors_free(sf);
        return st;
    }
    st = bn_train_model_new(&m, &c, 0, err);
    if (!st && opt) st = bn_adamw_init(opt, m, 0.9f, 0.95f, 1e-8f, 0.1f, err);
    for (i = 0; !st && i < m->n_params; i++) {
        st = bn__train_read_into(sf, m->names[i], m->params[i]->data, m->params[i]->n, path, err);
        if (!st && opt) {
            snprintf(name, sizeof name, "adam_m.%s", m->names[i]);
            st = bn__train_read_into(sf, name, opt->m[i], m->params[i]->n, path, err);
        }
        if (!st && opt) {
            snprintf(name, sizeof name, "adam_v.%s", m->names[i]);
            st = bn__train_read_into(sf, name, opt->v[i], m->params[i]->n, path, err);
        }
    }
    if (!st && opt) opt->step = (int64_t)strtoll(step, NULL, 10);
    bn_safetensors_free(sf);
    if (st) {
        if (opt) bn_adamw_free(opt);
        bn_train_model_free(m);
        return st;
    }
    *out = m;
    return BN_OK;
}

#endif /* BITNET_NO_TRAIN */
#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_TRAIN_H */
