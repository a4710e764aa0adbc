#ifndef BN_PART_FORWARD_H
#define BN_PART_FORWARD_H
#include "base.h"
#include "threads.h"
#include "ternary_matmul.h"
#include "float_simd.h"
#include "model.h"
/* A context holds what one or more sequences need to run through a model:
   the KV cache (one slot per sequence), scratch buffers, the thread pool and
   the logits of the last forward.

   bn_forward runs a batch of tokens, each tagged with its sequence and
   position, through the transformer in one pass over the weights: prompt
   processing is a batch of many tokens of one sequence; batched decoding is a
   batch of one token for each of many sequences.

   To learn what the transformer computes, read bn_train_forward (src/train.h)
   first: the same model as plain operations on whole tensors, a dozen lines
   a layer (tests/test_train.c checks that the two give the same logits).
   bn__block below is that layer step for step, written for speed: the float
   work between two matrix products runs one token row at a time, while the
   row is in cache (bn__rows), and q/k/v and gate/up each share one
   quantization of their input. */

typedef struct bn_context bn_context;
struct bn_backend; /* another device for the forward pass: see backend.h */

typedef struct bn_context_params {
    int n_ctx;     /* positions per sequence; 0 = the model's max_seq_len */
    int n_seq;     /* sequences (KV slots) the context holds; default 1 */
    int n_batch;   /* most tokens one bn_forward call takes; default 512 */
    int n_threads; /* 0 = one per core */
    bn_kernel kernel; /* BN_KERNEL_AUTO unless testing */
    /* Element type of the KV cache: BN_FTYPE_F32 (default: HF parity) or
       BN_FTYPE_F16 (half the memory, faster decoding at long contexts, logits
       off by ~1e-2 relative; README: KV cache). */
    bn_ftype kv_type;
    /* Bounds on what the context allocates (KV cache, scratch, logits), checked
       before it allocates anything: an embedder's memory budget. Zeros: the
       defaults (bn_limits). */
    bn_limits limits;
    /* NULL: the CPU. Otherwise the device bn_forward runs on (backend.h;
       bitnet_metal.m's bn_metal_backend); it must outlive the context. */
    const struct bn_backend *backend;
} bn_context_params;

/* One bn_forward call's input. Tokens of the same sequence must come in
   order, and pos[i] must equal that sequence's length so far (use
   bn_seq_truncate to rewind). want_logits may be NULL: logits for the last
   token of the batch only. */
typedef struct bn_batch {
    int n_tokens;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;        /* NULL: all sequence 0 */
    const int8_t *want_logits; /* NULL: only the last token */
} bn_batch;

/* Where a context's forward passes spend their time (bn_context_profile;
   bitnet bench --profile): the stages of a block, in order, and the head. */
typedef enum bn_stage {
    BN_STAGE_ATTN_IN,  /* RMSNorm and quantization of the attention input */
    BN_STAGE_QKV,      /* q, k and v projections (one parallel region) */
    BN_STAGE_ROPE_KV,  /* RoPE, and K and V into the cache */
    BN_STAGE_ATTN,     /* attention over the cache */
    BN_STAGE_ATTN_OUT, /* sub-norm and quantization of the attention output */
    BN_STAGE_O,        /* o_proj */
    BN_STAGE_FFN_IN,   /* residual add, RMSNorm and quantization */
    BN_STAGE_GATE_UP,  /* gate and up projections (one parallel region) */
    BN_STAGE_FFN_MID,  /* activation, sub-norm and quantization */
    BN_STAGE_DOWN,     /* down_proj */
    BN_STAGE_RESIDUAL, /* residual add */
    BN_STAGE_HEAD,     /* embedding rows, final norm, lm_head */
    BN_STAGE_COUNT
} bn_stage;

typedef struct bn_profile {
    double seconds[BN_STAGE_COUNT];         /* all of each stage's time, on the calling thread */
    bn_pool_stats regions[BN_STAGE_COUNT];  /* its parallel regions (see bn_pool_stats) */
    long forwards, tokens;                  /* bn_forward calls and their tokens */
} bn_profile;

BN_EXTERN_C_BEGIN
BN_API bn_context_params bn_context_default_params(void);
BN_API bn_status bn_context_new(bn_context **out, const bn_model *model, const bn_context_params *params,
                                bn_error *err);
BN_API void bn_context_free(bn_context *ctx);
/* Run a batch. Everything is checked before anything changes: on error the
   context is as it was. BN_ERR_CONTEXT_FULL when a position reaches n_ctx. */
BN_API bn_status bn_forward(bn_context *ctx, const bn_batch *batch, bn_error *err);
/* Logits (vocab_size floats) of batch token i of the last bn_forward, or NULL
   if they were not asked for. i = -1: the last token that has logits (after
   bn_eval, the logits of its last token). */
BN_API const float *bn_get_logits(const bn_context *ctx, int i);
/* Append n tokens to sequence seq (prompt or one decode step), in batches of
   n_batch; logits of the last token via bn_get_logits(ctx, -1). */
BN_API bn_status bn_eval(bn_context *ctx, int seq, const int32_t *tokens, int n, bn_error *err);
BN_API int bn_seq_len(const bn_context *ctx, int seq);
BN_API void bn_seq_truncate(bn_context *ctx, int seq, int len); /* keep the first len positions */
BN_API bn_status bn_seq_copy(bn_context *ctx, int src, int dst, bn_error *err); /* dst := src (KV and length) */
BN_API void bn_context_reset(bn_context *ctx); /* all sequences empty */
BN_API const bn_model *bn_context_model(const bn_context *ctx);
BN_API const bn_context_params *bn_context_get_params(const bn_context *ctx);
/* The tokens sequence seq holds (bn_seq_len of them; *n_tokens gets the
   number), valid until the next call that changes the context. */
BN_API const int32_t *bn_seq_tokens(const bn_context *ctx, int seq, int *n_tokens);

/* Sequence state: a sequence's tokens and KV cache as bytes, to resume it
   later (a prompt computed once, a conversation put aside) in any context of
   the same model and KV type, bit for bit: the logits of the next token after
   a load equal those the original sequence would have given. Logits are not
   part of it: feed the next token (or, to sample right after a load, truncate
   by one and feed the last token again).

   Layout (the writer's byte order, which a mark records): "BNSTATE\0",
   format version, byte-order mark, the model's fingerprint
   (bn_model_fingerprint), the KV type, layers, K/V heads, head size, token
   count, the library version that wrote it (64 bytes); the tokens; each
   layer's and head's K rows, then V rows; a 64-bit checksum of all before it. Loading refuses, with an error that says which, a file that is not a
   state, of another format version or byte order, cut short, corrupted
   (checksum), made for another model, or with another KV type, or longer
   than the context. */
#define BN_SEQ_STATE_VERSION 1
BN_API size_t bn_seq_state_size(const bn_context *ctx, int seq);
/* Write the state into buf[0..cap) (cap >= bn_seq_state_size); *written gets its size. */
BN_API bn_status bn_seq_state_save(const bn_context *ctx, int seq, void *buf, size_t cap, size_t *written, bn_error *err);
/* Replace sequence seq with the state in buf[0..len). On error seq is as it was. */
BN_API bn_status bn_seq_state_load(bn_context *ctx, int seq, const void *buf, size_t len, bn_error *err);
BN_API bn_status bn_seq_state_save_file(const bn_context *ctx, int seq, const char *path, bn_error *err);
BN_API bn_status bn_seq_state_load_file(bn_context *ctx, int seq, const char *path, bn_error *err);
/* A 64-bit hash of what the KV cache depends on: the config, every weight's
   shape, the ternary scales, the norms and two embedding rows (so two
   fine-tunes of one architecture differ). */
BN_API uint64_t bn_model_fingerprint(const bn_model *model);

/* Hidden-state capture for tests (HF's output_hidden_states). When out is not
   NULL, each later bn_forward writes n_layers + 1 slices of n_tokens x hidden
   floats: out[(l * n_tokens + t) * hidden + i], l = 0 the embeddings, l = 1 ..
   n_layers - 1 the output of layer l, l = n_layers the output after the final
   norm. The caller sizes out for its largest batch. NULL turns it off. */
BN_API void bn_context_capture_hidden(bn_context *ctx, float *out);
/* Profiling: when prof is not NULL, each later bn_forward adds its times to
   *prof (which the caller zeroes). It costs a few clock reads per stage and
   per thread in each parallel region. NULL turns it off. The stages are the
   CPU path's: a context on a backend (bn_context_params.backend) records
   nothing. */
BN_API void bn_context_profile(bn_context *ctx, bn_profile *prof);
BN_API const char *bn_stage_name(bn_stage stage); /* "qkv", "attention", ... */
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

struct bn_context {
    const bn_model *model;
    bn_context_params params;
    bn_pool *pool;
    /* KV cache: [n_seq][n_layers][n_kv_heads][n_ctx][head_dim] each, of params.kv_type
       (f32 or f16: kv_esize bytes an element). */
    unsigned char *k_cache, *v_cache;
    void *k_mem, *v_mem; /* their allocations: whole pages, for a backend to map (backend.h) */
    size_t kv_esize;
    bn__fops fops; /* the float helpers of params.kernel */
    int *seq_len; /* [n_seq] positions filled */
    int32_t *seq_tokens; /* [n_seq][n_ctx] the tokens at those positions */
    /* Scratch for one batch of up to n_batch tokens. */
    float *x;         /* residual stream [n_batch][hidden] */
    float *xn;        /* normed input of a block [n_batch][max(hidden, q_dim)] */
    float *q, *k, *v; /* [n_batch][q_dim], [n_batch][kv_dim] x 2 */
    float *att;       /* attention output [n_batch][q_dim] */
    float *gate, *up; /* [n_batch][intermediate] */
    float *proj;      /* output of o_proj / down_proj [n_batch][hidden] */
    int8_t *xq;       /* quantized activations [n_batch][max(hidden, q_dim, intermediate)] */
    void *xn_mem, *xq_mem; /* the allocations behind xn and xq (64-byte aligned: SIMD operands) */
    float *act_scale; /* [n_batch] */
    float *scores;    /* attention scratch, per thread (bn__scores_per_thread) */
    float *rope_cos, *rope_sin; /* [n_ctx][head_dim / 2], computed once */
    /* Logits of the tokens that asked for them. */
    float *logits;
    int logits_cap; /* rows allocated */
    int *logits_row; /* [n_batch] row of each batch token, or -1 */
    int n_batch_last, last_row;
    float *capture; /* see bn_context_capture_hidden */
    bn_profile *prof; /* see bn_context_profile */
    int stage;        /* the stage being timed, or -1 */
    double stage_t0;  /* when it began */
    void *backend_state; /* params.backend's state for this context (backend.h) */
};

/* backend.h: a context's device state, a forward pass run there, and the
   state's release. */
static bn_status bn__backend_context_new(bn_context *ctx, bn_error *err);
static void bn__backend_context_free(bn_context *ctx);
static bn_status bn__backend_forward(bn_context *ctx, const bn_batch *b, int n_out, bn_error *err);

BN_API bn_context_params bn_context_default_params(void) {
    bn_context_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = 0;
    p.n_seq = 1;
    p.n_batch = 512;
    p.n_threads = 0;
    p.kernel = BN_KERNEL_AUTO;
    p.kv_type = BN_FTYPE_F32;
    return p;
}

static size_t bn__kv_dim(const bn_config *c) { return (size_t)c->n_kv_heads * c->head_dim; }

/* A thread's attention scratch: scores for a GQA group's query heads, and a
   head's partial weighted sum (bn__attn_heads). */
static size_t bn__scores_per_thread(const bn_config *c, int n_ctx) {
    return (size_t)(c->n_heads / c->n_kv_heads) * n_ctx + c->head_dim;
}

/* Byte offset of the cache row (head_dim elements) of K/V head `head` at
   (seq, layer, pos). A head's rows are contiguous, so attention reads each
   head's keys as one stream: rows of all heads side by side (each head's
   row 2.5 KB from the next) made a 2048-token decode step's attention
   almost twice as slow, the prefetchers not keeping up. */
static size_t bn__kv_offset(const bn_context *ctx, int seq, int layer, int head, int pos) {
    const bn_config *c = &ctx->model->config;
    size_t slab = ((size_t)seq * c->n_layers + layer) * c->n_kv_heads + head;
    return (slab * ctx->params.n_ctx + (size_t)pos) * c->head_dim * ctx->kv_esize;
}

/* The RoPE table: the angle of pair i at position p is computed in f32 as HF
   does, p * theta^(-2i/head_dim), then its cos and sin. */
static void bn__rope_table(float *cos_out, float *sin_out, int n_ctx, int head_dim, float theta) {
    int p, i, half = head_dim / 2;
    for (i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        for (p = 0; p < n_ctx; p++) {
            float angle = (float)p * inv_freq;
            cos_out[(size_t)p * half + i] = (float)cos((double)angle);
            sin_out[(size_t)p * half + i] = (float)sin((double)angle);
        }
    }
}

/* The context's blocks, checked against params.limits before any is made
   (their sizes come from the model's config and the parameters). */
static bn_status bn__context_check_limits(bn_context *ctx, size_t kv_elems, size_t wide, bn_error *err) {
    const bn_config *c = &ctx->model->config;
    const bn_context_params *p = &ctx->params;
    size_t nb = (size_t)p->n_batch, q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = bn__kv_dim(c);
    size_t kv = kv_elems * ctx->kv_esize;
    size_t act = sizeof(float) * nb * (2 * (size_t)c->hidden_size + wide + 2 * q_dim + 2 * kv_dim +
                                       2 * (size_t)c->intermediate_size + 1) + nb * (wide + sizeof(int));
    size_t scores = sizeof(float) * (size_t)bn_pool_size(ctx->pool) * bn__scores_per_thread(c, p->n_ctx);
    size_t rope = 2 * sizeof(float) * (size_t)p->n_ctx * (size_t)(c->head_dim / 2);
    size_t logits = sizeof(float) * nb * (size_t)c->vocab_size;
    const char *const what[] = {"the KV cache's keys", "the KV cache's values", "the activations of a batch",
                                "the attention scratch", "the RoPE tables", "the logits of a batch"};
    const size_t bytes[] = {kv, kv, act, scores, rope, logits};
    char msg[BN_ERROR_MSG_MAX / 2];
    bn__budget b;
    int i;
    bn__budget_init(&b, &p->limits);
    for (i = 0; i < 6; i++) {
        bn_status st;
        snprintf(msg, sizeof msg, "bn_context_new: %s (n_seq %d, n_ctx %d, n_batch %d)", what[i], p->n_seq, p->n_ctx,
                 p->n_batch);
        if ((st = bn__budget_take(&b, bytes[i], 1, msg, err))) return st;
    }
    return BN_OK;
}

BN_API bn_status bn_context_new(bn_context **out, const bn_model *model, const bn_context_params *params,
                                bn_error *err) {
    bn_context_params p = params ? *params : bn_context_default_params();
    const bn_config *c;
    bn_context *ctx;
    size_t nb, q_dim, kv_dim, wide, kv_elems;
    bn_status st;
    *out = NULL;
    if (!model) return bn_errorf(err, BN_ERR_ARG, "bn_context_new: model is NULL");
    c = &model->config;
    if (p.n_ctx <= 0) p.n_ctx = c->max_seq_len;
    if (p.n_seq <= 0) p.n_seq = 1;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.kernel == BN_KERNEL_AUTO) p.kernel = bn_kernel_detect(); /* ask the CPU once, not per matmul */
    if (p.kv_type != BN_FTYPE_F32 && p.kv_type != BN_FTYPE_F16)
        return bn_errorf(err, BN_ERR_ARG, "bn_context_new: kv_type %d is not BN_FTYPE_F32 or BN_FTYPE_F16", (int)p.kv_type);
    if (p.n_ctx > c->max_seq_len)
        return bn_errorf(err, BN_ERR_ARG, "bn_context_new: n_ctx %d is larger than the model's max_position_embeddings %d",
                         p.n_ctx, c->max_seq_len);
    /* sizes in double first: a huge n_seq x n_ctx must fail cleanly, not wrap around */
    if ((double)p.n_seq * c->n_layers * p.n_ctx * c->n_kv_heads * c->head_dim * 2.0 * sizeof(float) > (double)SIZE_MAX / 2 ||
        (double)p.n_batch * (c->intermediate_size + c->hidden_size + (double)c->n_heads * c->head_dim) * 16.0 >
            (double)SIZE_MAX / 2)
        return bn_errorf(err, BN_ERR_NOMEM, "bn_context_new: %d sequences x %d positions (n_batch %d) is too large",
                         p.n_seq, p.n_ctx, p.n_batch);
    ctx = BN_ZALLOC(bn_context, 1);
    if (!ctx) return bn_errorf(err, BN_ERR_NOMEM, "out of memory");
    ctx->model = model;
    ctx->params = p;
    ctx->kv_esize = p.kv_type == BN_FTYPE_F16 ? 2 : 4;
    bn__fops_init(&ctx->fops, p.kernel);
    nb = (size_t)p.n_batch;
    q_dim = (size_t)c->n_heads * c->head_dim;
    kv_dim = bn__kv_dim(c);
    wide = BN_MAX(BN_MAX((size_t)c->hidden_size, q_dim), (size_t)c->intermediate_size);
    kv_elems = (size_t)p.n_seq * c->n_layers * p.n_ctx * kv_dim;
    ctx->pool = bn_pool_new(p.n_threads);
    if (ctx->pool && (st = bn__context_check_limits(ctx, kv_elems, wide, err))) {
        bn_context_free(ctx);
        return st;
    }
    ctx->k_cache = bn__alloc_align(kv_elems * ctx->kv_esize, BN__PAGE_BYTES, &ctx->k_mem);
    ctx->v_cache = bn__alloc_align(kv_elems * ctx->kv_esize, BN__PAGE_BYTES, &ctx->v_mem);
    ctx->seq_len = BN_ZALLOC(int, p.n_seq);
    ctx->seq_tokens = BN_ALLOC(int32_t, (size_t)p.n_seq * p.n_ctx);
    ctx->x = BN_ALLOC(float, nb * c->hidden_size);
    ctx->xn = (float *)bn__alloc_aligned(sizeof(float) * nb * wide, &ctx->xn_mem);
    ctx->q = BN_ALLOC(float, nb * q_dim);
    ctx->k = BN_ALLOC(float, nb * kv_dim);
    ctx->v = BN_ALLOC(float, nb * kv_dim);
    ctx->att = BN_ALLOC(float, nb * q_dim);
    ctx->gate = BN_ALLOC(float, nb * c->intermediate_size);
    ctx->up = BN_ALLOC(float, nb * c->intermediate_size);
    ctx->proj = BN_ALLOC(float, nb * c->hidden_size);
    ctx->xq = (int8_t *)bn__alloc_aligned(nb * wide, &ctx->xq_mem);
    ctx->act_scale = BN_ALLOC(float, nb);
    ctx->scores = BN_ALLOC(float, (size_t)bn_pool_size(ctx->pool) * bn__scores_per_thread(c, p.n_ctx));
    ctx->logits_row = BN_ALLOC(int, nb);
    ctx->rope_cos = BN_ALLOC(float, (size_t)p.n_ctx * (c->head_dim / 2));
    ctx->rope_sin = BN_ALLOC(float, (size_t)p.n_ctx * (c->head_dim / 2));
    if (!ctx->rope_cos || !ctx->rope_sin || !ctx->pool || !ctx->k_cache || !ctx->v_cache || !ctx->seq_len || !ctx->seq_tokens || !ctx->x || !ctx->xn || !ctx->q || !ctx->k ||
        !ctx->v || !ctx->att || !ctx->gate || !ctx->up || !ctx->proj || !ctx->xq || !ctx->act_scale || !ctx->scores ||
        !ctx->logits_row) {
        bn_context_free(ctx);
        return bn_errorf(err, BN_ERR_NOMEM, "bn_context_new: out of memory (KV cache of %lu MB for %d x %d positions)",
                         (unsigned long)(kv_elems * 2 * ctx->kv_esize >> 20), p.n_seq, p.n_ctx);
    }
    bn__rope_table(ctx->rope_cos, ctx->rope_sin, p.n_ctx, c->head_dim, c->rope_theta);
    ctx->last_row = -1;
    ctx->stage = -1;
    if (p.backend) {
        bn_status s = bn__backend_context_new(ctx, err);
        if (s) {
            bn_context_free(ctx);
            return s;
        }
    }
    *out = ctx;
    return BN_OK;
}

BN_API void bn_context_free(bn_context *ctx) {
    if (!ctx) return;
    bn__backend_context_free(ctx);
    bn_pool_free(ctx->pool);
    BN_FREE(ctx->k_mem);
    BN_FREE(ctx->v_mem);
    BN_FREE(ctx->seq_len);
    BN_FREE(ctx->seq_tokens);
    BN_FREE(ctx->x);
    BN_FREE(ctx->xn_mem);
    BN_FREE(ctx->q);
    BN_FREE(ctx->k);
    BN_FREE(ctx->v);
    BN_FREE(ctx->att);
    BN_FREE(ctx->gate);
    BN_FREE(ctx->up);
    BN_FREE(ctx->proj);
    BN_FREE(ctx->xq_mem);
    BN_FREE(ctx->act_scale);
    BN_FREE(ctx->scores);
    BN_FREE(ctx->logits);
    BN_FREE(ctx->logits_row);
    BN_FREE(ctx->rope_cos);
    BN_FREE(ctx->rope_sin);
    BN_FREE(ctx);
}

BN_API const bn_model *bn_context_model(const bn_context *ctx) { return ctx->model; }
BN_API const bn_context_params *bn_context_get_params(const bn_context *ctx) { return &ctx->params; }
BN_API void bn_context_capture_hidden(bn_context *ctx, float *out) { ctx->capture = out; }

BN_API void bn_context_profile(bn_context *ctx, bn_profile *prof) {
    ctx->prof = prof;
    ctx->stage = -1;
    bn_pool_profile(ctx->pool, NULL);
}

BN_API const char *bn_stage_name(bn_stage stage) {
    static const char *const names[BN_STAGE_COUNT] = {"attn_in", "qkv",     "rope_kv", "attention", "attn_out", "o_proj",
                                                      "ffn_in",  "gate_up", "ffn_mid", "down_proj", "residual", "head"};
    return (int)stage >= 0 && stage < BN_STAGE_COUNT ? names[stage] : "?";
}

/* Profiling: the current stage ends and `stage` begins (-1: none). */
static void bn__stage(bn_context *ctx, int stage) {
    double t;
    if (!ctx->prof) return;
    t = bn__clock();
    if (ctx->stage >= 0) ctx->prof->seconds[ctx->stage] += t - ctx->stage_t0;
    ctx->stage = stage;
    ctx->stage_t0 = t;
    bn_pool_profile(ctx->pool, stage >= 0 ? &ctx->prof->regions[stage] : NULL);
}

BN_API int bn_seq_len(const bn_context *ctx, int seq) {
    return seq >= 0 && seq < ctx->params.n_seq ? ctx->seq_len[seq] : 0;
}

BN_API void bn_seq_truncate(bn_context *ctx, int seq, int len) {
    if (seq < 0 || seq >= ctx->params.n_seq || len < 0) return;
    if (len < ctx->seq_len[seq]) ctx->seq_len[seq] = len;
}

BN_API bn_status bn_seq_copy(bn_context *ctx, int src, int dst, bn_error *err) {
    const bn_config *c = &ctx->model->config;
    size_t n;
    int l, h;
    if (src < 0 || src >= ctx->params.n_seq || dst < 0 || dst >= ctx->params.n_seq)
        return bn_errorf(err, BN_ERR_ARG, "bn_seq_copy: sequence %d or %d is not in [0, %d)", src, dst, ctx->params.n_seq);
    if (src == dst) return BN_OK;
    n = bn__kv_offset(ctx, 0, 0, 0, ctx->seq_len[src]); /* bytes of the filled rows of one head */
    for (l = 0; l < c->n_layers; l++)
        for (h = 0; h < c->n_kv_heads; h++) {
            memcpy(ctx->k_cache + bn__kv_offset(ctx, dst, l, h, 0), ctx->k_cache + bn__kv_offset(ctx, src, l, h, 0), n);
            memcpy(ctx->v_cache + bn__kv_offset(ctx, dst, l, h, 0), ctx->v_cache + bn__kv_offset(ctx, src, l, h, 0), n);
        }
    memcpy(ctx->seq_tokens + (size_t)dst * ctx->params.n_ctx, ctx->seq_tokens + (size_t)src * ctx->params.n_ctx,
           sizeof(int32_t) * (size_t)ctx->seq_len[src]);
    ctx->seq_len[dst] = ctx->seq_len[src];
    return BN_OK;
}

BN_API const int32_t *bn_seq_tokens(const bn_context *ctx, int seq, int *n_tokens) {
    int ok = seq >= 0 && seq < ctx->params.n_seq;
    if (n_tokens) *n_tokens = ok ? ctx->seq_len[seq] : 0;
    return ok ? ctx->seq_tokens + (size_t)seq * ctx->params.n_ctx : NULL;
}

BN_API void bn_context_reset(bn_context *ctx) {
    memset(ctx->seq_len, 0, sizeof(int) * (size_t)ctx->params.n_seq);
    ctx->n_batch_last = 0;
    ctx->last_row = -1;
}

/* ---- the building blocks -------------------------------------------------- */

/* out = x * rsqrt(mean(x^2) + eps) * w, for one vector of n (HF's RMSNorm in f32).
   The sum of squares is accumulated in double: PyTorch's vectorized reduction
   is more accurate than a naive f32 loop, and an activation that lands on a
   rounding tie after the norm must round the way HF's does. (Each square
   is exact in double, so the SIMD helpers' other summation order changes ss
   by a few double ulps at most, far below the float it becomes.) */
static void bn__rmsnorm(const bn__fops *fo, float *out, const float *x, const float *w, int n, float eps) {
    double ss = fo->sumsq(x, n);
    float inv = 1.0f / sqrtf((float)(ss / n) + eps);
    fo->scale_mul(out, x, w, inv, n); /* out[i] = w[i] * (x[i] * inv) */
}

static void bn__rmsnorm_rows(const bn_context *ctx, float *out, const float *x, const float *w, int n_tokens, int n) {
    float eps = ctx->model->config.rms_norm_eps;
    int t;
    for (t = 0; t < n_tokens; t++) bn__rmsnorm(&ctx->fops, out + (size_t)t * n, x + (size_t)t * n, w, n, eps);
}

/* The float work between two matmuls, one token (row) at a time: each row
   stays in cache through all of its steps (residual add, norm, activation,
   quantization) instead of each step sweeping the whole batch, and the rows
   are spread over the pool. The quantized row is what every linear reading
   this input shares. */
typedef void (*bn__row_fn)(bn_context *ctx, const bn_layer *L, int t);

/* h = input_norm(x); hq = quant(h): the input of q_proj, k_proj and v_proj */
static void bn__row_attn_in(bn_context *ctx, const bn_layer *L, int t) {
    const bn_config *c = &ctx->model->config;
    size_t at = (size_t)t * c->hidden_size;
    bn__rmsnorm(&ctx->fops, ctx->xn + at, ctx->x + at, L->attn_norm, c->hidden_size, c->rms_norm_eps);
    ctx->act_scale[t] = ctx->fops.quantize(ctx->xn + at, c->hidden_size, ctx->xq + at);
}

/* quant(attn_sub_norm(a)): the input of o_proj (a: the attention's output) */
static void bn__row_attn_out(bn_context *ctx, const bn_layer *L, int t) {
    const bn_config *c = &ctx->model->config;
    int q_dim = c->n_heads * c->head_dim;
    float *a = ctx->att + (size_t)t * q_dim;
    if (L->attn_sub_norm) bn__rmsnorm(&ctx->fops, a, a, L->attn_sub_norm, q_dim, c->rms_norm_eps);
    ctx->act_scale[t] = ctx->fops.quantize(a, q_dim, ctx->xq + (size_t)t * q_dim);
}

/* The attention's residual, x = x + o_proj(...); then, while the row is in
   cache, the feed-forward's input: h = post_norm(x); hq = quant(h) */
static void bn__row_attn_residual(bn_context *ctx, const bn_layer *L, int t) {
    const bn_config *c = &ctx->model->config;
    size_t at = (size_t)t * c->hidden_size;
    ctx->fops.add(ctx->x + at, ctx->proj + at, c->hidden_size);
    bn__rmsnorm(&ctx->fops, ctx->xn + at, ctx->x + at, L->ffn_norm, c->hidden_size, c->rms_norm_eps);
    ctx->act_scale[t] = ctx->fops.quantize(ctx->xn + at, c->hidden_size, ctx->xq + at);
}

/* f = relu2(gate) * up (silu(gate) * up for llama); quant(ffn_sub_norm(f)): the input of down_proj */
static void bn__row_ffn_mid(bn_context *ctx, const bn_layer *L, int t) {
    const bn_config *c = &ctx->model->config;
    int f = c->intermediate_size, i;
    float *g = ctx->gate + (size_t)t * f, *up = ctx->up + (size_t)t * f;
    if (c->act == BN_ACT_RELU2) {
        ctx->fops.relu2_mul(g, up, f); /* relu(g)^2 * up */
    } else {
        for (i = 0; i < f; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * up[i]; /* silu(g) * up */
    }
    if (L->ffn_sub_norm) bn__rmsnorm(&ctx->fops, g, g, L->ffn_sub_norm, f, c->rms_norm_eps);
    ctx->act_scale[t] = ctx->fops.quantize(g, f, ctx->xq + (size_t)t * f);
}

/* The feed-forward's residual: x = x + down_proj(...) */
static void bn__row_ffn_residual(bn_context *ctx, const bn_layer *L, int t) {
    size_t at = (size_t)t * ctx->model->config.hidden_size;
    BN_UNUSED(L);
    ctx->fops.add(ctx->x + at, ctx->proj + at, ctx->model->config.hidden_size);
}

typedef struct bn__rows_job {
    bn_context *ctx;
    const bn_layer *L;
    int n_tokens;
    bn__row_fn fn;
} bn__rows_job;

static void bn__rows_worker(void *arg, int ith, int nth) {
    const bn__rows_job *job = (const bn__rows_job *)arg;
    int lo, hi, t;
    bn_split_range(job->n_tokens, ith, nth, &lo, &hi);
    for (t = lo; t < hi; t++) job->fn(job->ctx, job->L, t);
}

static void bn__rows(bn_context *ctx, const bn_layer *L, int n_tokens, bn__row_fn fn) {
    bn__rows_job job;
    int t;
    if (n_tokens == 1) { /* decoding: not worth waking the pool */
        for (t = 0; t < n_tokens; t++) fn(ctx, L, t);
        return;
    }
    job.ctx = ctx;
    job.L = L;
    job.n_tokens = n_tokens;
    job.fn = fn;
    bn_pool_run(ctx->pool, bn__rows_worker, &job);
}

/* RoPE, HF's rotate-half convention: dimension i pairs with i + head_dim/2
   (not with i + 1 as in the interleaved GPT-J/llama.cpp style). */
static void bn__rope(const bn_context *ctx, float *v, int n_heads, int pos) {
    int head_dim = ctx->model->config.head_dim, h, i, half = head_dim / 2;
    const float *cosp = ctx->rope_cos + (size_t)pos * half, *sinp = ctx->rope_sin + (size_t)pos * half;
    for (h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (i = 0; i < half; i++) { /* contiguous: the compiler vectorizes it */
            float x1 = x[i], x2 = x[i + half];
            x[i] = x1 * cosp[i] - x2 * sinp[i];
            x[i + half] = x2 * cosp[i] + x1 * sinp[i];
        }
    }
}

/* Attention for the (token, head) pairs of a batch, spread over the pool's
   threads. A task is a token and `heads` of its query heads that read the
   same K/V head (grouped-query attention: 2B4T has 4 query heads per K/V
   head), so that the task reads those K and V rows from memory once for all
   of them rather than once per query head. */
typedef struct bn__attn_job {
    bn_context *ctx;
    int layer, n_tokens, heads;
    const int32_t *pos, *seq;
} bn__attn_job;

/* Keys per pass over the cache: a pass's K (V) rows, 256 x head_dim
   elements (128 KB for 2B4T in f32), stay in L2 while each head of the task
   reads them. */
#define BN__ATTN_CHUNK 256

/* Query heads per task: the whole group, or fewer when the batch is too
   small to give each thread about 4 tasks (2B4T, one token, 2 threads: 2
   heads, 10 tasks). The numbers do not depend on it (see bn__attn_heads). */
static int bn__attn_heads_per_task(int n_tokens, int n_heads, int group, int nth) {
    int heads = group;
    while (heads > 1 && (long)n_tokens * n_heads / heads < 4L * nth) {
        do heads--;
        while (group % heads);
    }
    return heads;
}

/* Attention of `heads` query heads q (head_dim floats each, one after the
   other) that share the K/V rows kc, vc (row_bytes apart), over n_keys
   positions, into out. scores holds heads x n_ctx floats plus head_dim.
   Each head's result depends only on n_keys: scores with the dot helper,
   softmax, then the weighted sum of V rows, in passes of BN__ATTN_CHUNK keys
   whose partial sums are added in order. */
static void bn__attn_heads(const bn__fops *fo, int heads, int hd, const float *q, float *out, const unsigned char *kc,
                           const unsigned char *vc, size_t row_bytes, int n_keys, int f16, float *scores, int n_ctx) {
    float scale = 1.0f / sqrtf((float)hd), *part = scores + (size_t)heads * n_ctx;
    int j, p0, p, i;
    for (p0 = 0; p0 < n_keys; p0 += BN__ATTN_CHUNK)
        for (j = 0; j < heads; j++)
            fo->dot_rows(scores + (size_t)j * n_ctx + p0, q + (size_t)j * hd, kc + (size_t)p0 * row_bytes, row_bytes,
                         BN_MIN(n_keys - p0, BN__ATTN_CHUNK), hd, f16);
    for (j = 0; j < heads; j++) {
        float *sc = scores + (size_t)j * n_ctx, max = -INFINITY, sum;
        for (p = 0; p < n_keys; p++) {
            sc[p] *= scale;
            max = BN_MAX(max, sc[p]);
        }
        sum = bn__softmax_exp(sc, max, n_keys);
        for (p = 0; p < n_keys; p++) sc[p] /= sum;
    }
    for (p0 = 0; p0 < n_keys; p0 += BN__ATTN_CHUNK)
        for (j = 0; j < heads; j++) {
            float *o = out + (size_t)j * hd;
            fo->wsum_rows(p0 ? part : o, scores + (size_t)j * n_ctx + p0, vc + (size_t)p0 * row_bytes, row_bytes,
                          BN_MIN(n_keys - p0, BN__ATTN_CHUNK), hd, f16);
            if (p0)
                for (i = 0; i < hd; i++) o[i] += part[i];
        }
}

static void bn__attn_worker(void *arg, int ith, int nth) {
    const bn__attn_job *job = (const bn__attn_job *)arg;
    bn_context *ctx = job->ctx;
    const bn_config *c = &ctx->model->config;
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads, per_token = c->n_heads / job->heads, lo, hi, task;
    size_t q_dim = (size_t)c->n_heads * hd;
    float *scores = ctx->scores + (size_t)ith * bn__scores_per_thread(c, ctx->params.n_ctx);
    bn_split_range(job->n_tokens * per_token, ith, nth, &lo, &hi);
    for (task = lo; task < hi; task++) {
        int t = task / per_token, h = task % per_token * job->heads, seq = job->seq ? job->seq[t] : 0;
        size_t head = bn__kv_offset(ctx, seq, job->layer, h / group, 0);
        /* causal: this token sees positions 0..pos of its own sequence */
        bn__attn_heads(&ctx->fops, job->heads, hd, ctx->q + (size_t)t * q_dim + (size_t)h * hd,
                       ctx->att + (size_t)t * q_dim + (size_t)h * hd, ctx->k_cache + head, ctx->v_cache + head,
                       (size_t)hd * ctx->kv_esize, job->pos[t] + 1, ctx->params.kv_type == BN_FTYPE_F16, scores,
                       ctx->params.n_ctx);
    }
}

/* Store a token's K or V (kv_dim floats, head after head) in the cache at (seq, layer, pos). */
static void bn__kv_store(bn_context *ctx, unsigned char *cache, int seq, int layer, int pos, const float *kv) {
    const bn_config *c = &ctx->model->config;
    int h, hd = c->head_dim;
    for (h = 0; h < c->n_kv_heads; h++) {
        unsigned char *at = cache + bn__kv_offset(ctx, seq, layer, h, pos);
        if (ctx->params.kv_type == BN_FTYPE_F16) ctx->fops.to_f16((uint16_t *)at, kv + (size_t)h * hd, hd);
        else memcpy(at, kv + (size_t)h * hd, sizeof(float) * (size_t)hd);
    }
}

/* RoPE on token t's q and k, and its k and v into the cache. */
typedef struct bn__rope_kv_job {
    bn_context *ctx;
    int layer;
    const bn_batch *b;
} bn__rope_kv_job;

static void bn__rope_kv_token(bn_context *ctx, int l, const bn_batch *b, int t) {
    const bn_config *c = &ctx->model->config;
    int seq = b->seq ? b->seq[t] : 0, q_dim = c->n_heads * c->head_dim, kv_dim = (int)bn__kv_dim(c);
    bn__rope(ctx, ctx->q + (size_t)t * q_dim, c->n_heads, b->pos[t]);
    bn__rope(ctx, ctx->k + (size_t)t * kv_dim, c->n_kv_heads, b->pos[t]);
    bn__kv_store(ctx, ctx->k_cache, seq, l, b->pos[t], ctx->k + (size_t)t * kv_dim);
    bn__kv_store(ctx, ctx->v_cache, seq, l, b->pos[t], ctx->v + (size_t)t * kv_dim);
}

/* Over the pool when there are several tokens: the first store to a cache
   page faults it in (a few microseconds each), which a batch of 8 new tokens
   a step pays 30 layers over. */
static void bn__rope_kv_worker(void *arg, int ith, int nth) {
    const bn__rope_kv_job *job = (const bn__rope_kv_job *)arg;
    int lo, hi, t;
    bn_split_range(job->b->n_tokens, ith, nth, &lo, &hi);
    for (t = lo; t < hi; t++) bn__rope_kv_token(job->ctx, job->layer, job->b, t);
}

static void bn__capture(bn_context *ctx, int slot, const float *x, int n_tokens) {
    size_t n = (size_t)n_tokens * ctx->model->config.hidden_size;
    if (ctx->capture) memcpy(ctx->capture + (size_t)slot * n, x, n * sizeof(float));
}

/* The matrices of layer l's product at a matrix stage (QKV, O, GATE_UP or
   DOWN) into m; their count, 0 past the last layer. */
static int bn__stage_mats(const bn_context *ctx, int l, bn_stage stage, const bn_tmat **m) {
    const bn_layer *L = l < ctx->model->config.n_layers ? &ctx->model->layers[l] : NULL;
    if (!L) return 0;
    switch (stage) {
    case BN_STAGE_QKV: m[0] = &L->wq, m[1] = &L->wk, m[2] = &L->wv; return 3;
    case BN_STAGE_O: m[0] = &L->wo; return 1;
    case BN_STAGE_GATE_UP: m[0] = &L->w_gate, m[1] = &L->w_up; return 2;
    case BN_STAGE_DOWN: m[0] = &L->w_down; return 1;
    default: return 0;
    }
}

/* Before each matrix product, the pool learns the next one's weights (layer
   l's product at `stage`; none past the last layer), which its workers
   prefetch while the caller does the float work between the two
   (bn__pool_ahead). */
static void bn__ahead_stage(bn_context *ctx, int l, bn_stage stage, int n) {
    const bn_tmat *m[3];
    bn__tmat_ahead(ctx->pool, m, bn__stage_mats(ctx, l, stage, m), n);
}

/* q, k, v = q_proj(hq), k_proj(hq), v_proj(hq); q, k = rope(q), rope(k); k and
   v go into the KV cache at their positions; a = attention(q, k, v) over each
   token's sequence so far; then o_proj's input (bn__row_attn_out) and
   proj = o_proj(...). */
static void bn__attention(bn_context *ctx, int l, const bn_batch *b) {
    const bn_config *c = &ctx->model->config;
    const bn_layer *L = &ctx->model->layers[l];
    int n = b->n_tokens;
    const bn_tmat *qkv[3];
    float *out[3];
    bn__attn_job job;
    bn__stage(ctx, BN_STAGE_QKV);
    bn__stage_mats(ctx, l, BN_STAGE_QKV, qkv);
    out[0] = ctx->q, out[1] = ctx->k, out[2] = ctx->v;
    bn__ahead_stage(ctx, l, BN_STAGE_O, n);
    bn_tmat_matmul_n(qkv, 3, ctx->xq, ctx->act_scale, n, out, ctx->pool, ctx->params.kernel);
    bn__stage(ctx, BN_STAGE_ROPE_KV);
    if (n == 1) {
        bn__rope_kv_token(ctx, l, b, 0);
    } else {
        bn__rope_kv_job rk;
        rk.ctx = ctx;
        rk.layer = l;
        rk.b = b;
        bn_pool_run(ctx->pool, bn__rope_kv_worker, &rk);
    }
    job.ctx = ctx;
    job.layer = l;
    job.n_tokens = n;
    job.pos = b->pos;
    job.seq = b->seq;
    job.heads = bn__attn_heads_per_task(n, c->n_heads, c->n_heads / c->n_kv_heads, bn_pool_size(ctx->pool));
    bn__stage(ctx, BN_STAGE_ATTN);
    bn_pool_run(ctx->pool, bn__attn_worker, &job);
    bn__stage(ctx, BN_STAGE_ATTN_OUT);
    bn__rows(ctx, L, n, bn__row_attn_out);
    bn__stage(ctx, BN_STAGE_O);
    bn__ahead_stage(ctx, l, BN_STAGE_GATE_UP, n);
    bn_tmat_matmul(&L->wo, ctx->xq, ctx->act_scale, n, ctx->proj, ctx->pool, ctx->params.kernel);
}

/* gate, up = gate_proj(hq), up_proj(hq); down_proj's input (bn__row_ffn_mid);
   proj = down_proj(...). */
static void bn__feed_forward(bn_context *ctx, int l, int n) {
    const bn_layer *L = &ctx->model->layers[l];
    const bn_tmat *gate_up[2];
    float *out[2];
    bn__stage(ctx, BN_STAGE_GATE_UP);
    bn__stage_mats(ctx, l, BN_STAGE_GATE_UP, gate_up);
    out[0] = ctx->gate, out[1] = ctx->up;
    bn__ahead_stage(ctx, l, BN_STAGE_DOWN, n);
    bn_tmat_matmul_n(gate_up, 2, ctx->xq, ctx->act_scale, n, out, ctx->pool, ctx->params.kernel);
    bn__stage(ctx, BN_STAGE_FFN_MID);
    bn__rows(ctx, L, n, bn__row_ffn_mid);
    bn__stage(ctx, BN_STAGE_DOWN);
    bn__ahead_stage(ctx, l + 1, BN_STAGE_QKV, n); /* after the last layer: none */
    bn_tmat_matmul(&L->w_down, ctx->xq, ctx->act_scale, n, ctx->proj, ctx->pool, ctx->params.kernel);
}

/* One transformer block over the batch, the block of bn_train_forward step for step:

       h = input_norm(x); hq = quant(h)
       x = x + o_proj(quant(attn_sub_norm(attention(rope(q_proj(hq)), rope(k_proj(hq)), v_proj(hq)))))
       h = post_norm(x); hq = quant(h)
       x = x + down_proj(quant(ffn_sub_norm(relu2(gate_proj(hq)) * up_proj(hq))))

   Each row pass (bn__rows) does all the float work between two matrix
   products, so the attention's residual add shares its pass with the
   feed-forward's input norm and quantization. bn__stage marks the stages
   that bn_context_profile times. */
static void bn__block(bn_context *ctx, int l, const bn_batch *b) {
    const bn_layer *L = &ctx->model->layers[l];
    int n = b->n_tokens;
    bn__stage(ctx, BN_STAGE_ATTN_IN);
    bn__rows(ctx, L, n, bn__row_attn_in);       /* h = input_norm(x); hq = quant(h) */
    bn__attention(ctx, l, b);                   /* proj = o_proj(quant(attn_sub_norm(attention(...)))) */
    bn__stage(ctx, BN_STAGE_FFN_IN);
    bn__rows(ctx, L, n, bn__row_attn_residual); /* x = x + proj; h = post_norm(x); hq = quant(h) */
    bn__feed_forward(ctx, l, n);                /* proj = down_proj(quant(ffn_sub_norm(relu2(gate) * up))) */
    bn__stage(ctx, BN_STAGE_RESIDUAL);
    bn__rows(ctx, L, n, bn__row_ffn_residual);  /* x = x + proj */
}

/* Check the whole batch before touching any state. */
static bn_status bn__check_batch(const bn_context *ctx, const bn_batch *b, bn_error *err) {
    const bn_config *c = &ctx->model->config;
    int t, u;
    if (!b || b->n_tokens <= 0 || !b->token || !b->pos)
        return bn_errorf(err, BN_ERR_ARG, "bn_forward: empty batch or NULL token/pos arrays");
    if (b->n_tokens > ctx->params.n_batch)
        return bn_errorf(err, BN_ERR_ARG, "bn_forward: %d tokens is more than n_batch %d", b->n_tokens, ctx->params.n_batch);
    for (t = 0; t < b->n_tokens; t++) {
        int seq = b->seq ? b->seq[t] : 0, expect = ctx->seq_len[seq >= 0 && seq < ctx->params.n_seq ? seq : 0];
        if (b->token[t] < 0 || b->token[t] >= c->vocab_size)
            return bn_errorf(err, BN_ERR_ARG, "bn_forward: token %d (batch index %d) is not in [0, %d)", b->token[t], t,
                             c->vocab_size);
        if (seq < 0 || seq >= ctx->params.n_seq)
            return bn_errorf(err, BN_ERR_ARG, "bn_forward: sequence %d (batch index %d) is not in [0, %d)", seq, t,
                             ctx->params.n_seq);
        for (u = 0; u < t; u++) expect += (b->seq ? b->seq[u] : 0) == seq;
        if (b->pos[t] != expect)
            return bn_errorf(err, BN_ERR_ARG, "bn_forward: batch index %d has position %d, sequence %d expects %d", t,
                             b->pos[t], seq, expect);
        if (b->pos[t] >= ctx->params.n_ctx)
            return bn_errorf(err, BN_ERR_CONTEXT_FULL,
                             "bn_forward: sequence %d is full: position %d does not fit a context of %d tokens", seq,
                             b->pos[t], ctx->params.n_ctx);
    }
    return BN_OK;
}

/* After a forward (on the CPU or a backend): the batch's tokens join their
   sequences (bn_seq_tokens) and the sequences grow. */
static void bn__advance_seqs(bn_context *ctx, const bn_batch *b) {
    int t;
    for (t = 0; t < b->n_tokens; t++) {
        int seq = b->seq ? b->seq[t] : 0;
        ctx->seq_tokens[(size_t)seq * ctx->params.n_ctx + b->pos[t]] = b->token[t];
        ctx->seq_len[seq]++;
    }
}

BN_API bn_status bn_forward(bn_context *ctx, const bn_batch *b, bn_error *err) {
    const bn_model *m = ctx->model;
    const bn_config *c = &m->config;
    int n, t, l, n_out = 0, hid = c->hidden_size;
    bn_status s = bn__check_batch(ctx, b, err);
    if (s) return s;
    n = b->n_tokens;
    /* which tokens get logits */
    for (t = 0; t < n; t++) {
        int want = b->want_logits ? b->want_logits[t] != 0 : t == n - 1;
        ctx->logits_row[t] = want ? n_out++ : -1;
    }
    if (n_out > ctx->logits_cap) {
        float *nl = (float *)BN_REALLOC(ctx->logits, sizeof(float) * (size_t)n_out * c->vocab_size);
        if (!nl) return bn_errorf(err, BN_ERR_NOMEM, "bn_forward: out of memory for %d rows of logits", n_out);
        ctx->logits = nl;
        ctx->logits_cap = n_out;
    }
    /* the sequence lengths grow only once the batch is known to be valid */
    ctx->n_batch_last = n;
    ctx->last_row = -1;
    if (ctx->backend_state) return bn__backend_forward(ctx, b, n_out, err);
    bn__stage(ctx, BN_STAGE_HEAD);
    for (t = 0; t < n; t++) {
        bn_fmat_row(&m->embed, b->token[t], ctx->x + (size_t)t * hid);
        if (ctx->logits_row[t] >= 0) ctx->last_row = ctx->logits_row[t];
    }
    bn__capture(ctx, 0, ctx->x, n);
    for (l = 0; l < c->n_layers; l++) {
        bn__block(ctx, l, b);
        if (l < c->n_layers - 1) bn__capture(ctx, l + 1, ctx->x, n);
    }
    bn__stage(ctx, BN_STAGE_HEAD);
    bn__rmsnorm_rows(ctx, ctx->xn, ctx->x, m->final_norm, n, hid);
    bn__capture(ctx, c->n_layers, ctx->xn, n);
    /* lm_head over the tokens that want logits, gathered into contiguous rows */
    for (t = 0; t < n; t++)
        if (ctx->logits_row[t] >= 0 && ctx->logits_row[t] != t)
            memmove(ctx->xn + (size_t)ctx->logits_row[t] * hid, ctx->xn + (size_t)t * hid, sizeof(float) * (size_t)hid);
    if (n_out) bn_fmat_matmul_kernel(&m->lm_head, ctx->xn, n_out, ctx->logits, ctx->pool, ctx->params.kernel);
    bn__advance_seqs(ctx, b);
    bn__stage(ctx, -1);
    if (ctx->prof) {
        ctx->prof->forwards++;
        ctx->prof->tokens += n;
    }
    return BN_OK;
}

BN_API const float *bn_get_logits(const bn_context *ctx, int i) {
    int row;
    if (i == -1) row = ctx->last_row;
    else if (i < 0 || i >= ctx->n_batch_last) return NULL;
    else row = ctx->logits_row[i];
    return row < 0 ? NULL : ctx->logits + (size_t)row * ctx->model->config.vocab_size;
}

BN_API bn_status bn_eval(bn_context *ctx, int seq, const int32_t *tokens, int n, bn_error *err) {
    int32_t *pos, *seqs;
    int done = 0, i;
    bn_status s = BN_OK;
    if (n <= 0 || !tokens) return bn_errorf(err, BN_ERR_ARG, "bn_eval: no tokens");
    if (seq < 0 || seq >= ctx->params.n_seq)
        return bn_errorf(err, BN_ERR_ARG, "bn_eval: sequence %d is not in [0, %d)", seq, ctx->params.n_seq);
    if (ctx->seq_len[seq] + n > ctx->params.n_ctx)
        return bn_errorf(err, BN_ERR_CONTEXT_FULL,
                         "bn_eval: sequence %d has %d tokens; %d more do not fit a context of %d tokens", seq,
                         ctx->seq_len[seq], n, ctx->params.n_ctx);
    pos = BN_ALLOC(int32_t, ctx->params.n_batch);
    seqs = BN_ALLOC(int32_t, ctx->params.n_batch);
    if (!pos || !seqs) s = bn_errorf(err, BN_ERR_NOMEM, "bn_eval: out of memory");
    while (!s && done < n) {
        bn_batch b;
        int chunk = BN_MIN(n - done, ctx->params.n_batch);
        for (i = 0; i < chunk; i++) {
            pos[i] = ctx->seq_len[seq] + i;
            seqs[i] = seq;
        }
        memset(&b, 0, sizeof b);
        b.n_tokens = chunk;
        b.token = tokens + done;
        b.pos = pos;
        b.seq = seqs;
        s = bn_forward(ctx, &b, err);
        done += chunk;
    }
    BN_FREE(pos);
    BN_FREE(seqs);
    return s;
}

/* ---- sequence state --------------------------------------------------------- */

#define BN__STATE_HEADER 64
#define BN__STATE_BOM 0x01020304u

/* FNV-1a over 32-bit words: cheap enough for hundreds of MB of KV cache, and
   any change to one word changes the result (each step is a bijection). */
static uint64_t bn__state_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    for (i = 0; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        h = (h ^ w) * 0x100000001B3ull;
    }
    return h;
}

static uint64_t bn__hash_floats(uint64_t h, const float *x, size_t n) { return x ? bn__state_hash(h, x, n * sizeof(float)) : h; }

static uint64_t bn__hash_u32(uint64_t h, uint32_t v) { return bn__state_hash(h, &v, 4); }

BN_API uint64_t bn_model_fingerprint(const bn_model *m) {
    const bn_config *c = &m->config;
    uint64_t h = 14695981039346656037ull;
    int l, k, rows[2];
    float *row = BN_ALLOC(float, c->hidden_size);
    int32_t dims[] = {(int32_t)c->arch, (int32_t)c->act, c->vocab_size, c->hidden_size, c->intermediate_size,
                      c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->has_sub_norms, c->tie_word_embeddings,
                      m->embed.rows, m->embed.cols, m->lm_head.rows, m->lm_head.cols};
    h = bn__state_hash(h, dims, sizeof dims);
    h = bn__hash_floats(h, &c->rope_theta, 1);
    h = bn__hash_floats(h, &c->rms_norm_eps, 1);
    h = bn__hash_floats(h, m->final_norm, (size_t)c->hidden_size);
    for (l = 0; l < c->n_layers; l++) {
        const bn_layer *L = &m->layers[l];
        const bn_tmat *t[7];
        t[0] = &L->wq, t[1] = &L->wk, t[2] = &L->wv, t[3] = &L->wo, t[4] = &L->w_gate, t[5] = &L->w_up, t[6] = &L->w_down;
        for (k = 0; k < 7; k++) {
            h = bn__hash_u32(bn__hash_u32(h, (uint32_t)t[k]->rows), (uint32_t)t[k]->cols);
            h = bn__hash_floats(h, &t[k]->scale, 1);
        }
        h = bn__hash_floats(h, L->attn_norm, (size_t)c->hidden_size);
        h = bn__hash_floats(h, L->ffn_norm, (size_t)c->hidden_size);
        h = bn__hash_floats(h, L->attn_sub_norm, L->attn_sub_norm ? (size_t)c->n_heads * c->head_dim : 0);
        h = bn__hash_floats(h, L->ffn_sub_norm, L->ffn_sub_norm ? (size_t)c->intermediate_size : 0);
    }
    rows[0] = 0; /* the embedding values as the forward reads them (whatever their storage) */
    rows[1] = m->embed.rows - 1;
    for (k = 0; k < 2 && row; k++) {
        bn_fmat_row(&m->embed, rows[k], row);
        h = bn__hash_floats(h, row, (size_t)c->hidden_size);
    }
    BN_FREE(row);
    return h;
}

BN_API size_t bn_seq_state_size(const bn_context *ctx, int seq) {
    const bn_config *c = &ctx->model->config;
    size_t n = (size_t)bn_seq_len(ctx, seq);
    return BN__STATE_HEADER + 4 * n + 2 * (size_t)c->n_layers * c->n_kv_heads * n * c->head_dim * ctx->kv_esize + 8;
}

/* Where a state goes: a buffer or a file; the checksum runs along. */
typedef struct bn__state_out {
    unsigned char *buf;
    size_t cap, pos;
    FILE *f;
    uint64_t h;
    int fail;
} bn__state_out;

static void bn__state_put(bn__state_out *o, const void *p, size_t n, int hashed) {
    if (o->fail) return;
    if (hashed) o->h = bn__state_hash(o->h, p, n);
    if (o->f) o->fail = fwrite(p, 1, n, o->f) != n;
    else if (o->pos + n > o->cap) o->fail = 1;
    else memcpy(o->buf + o->pos, p, n);
    o->pos += n;
}

static void bn__state_header(const bn_context *ctx, int n, unsigned char *hd) {
    const bn_config *c = &ctx->model->config;
    uint32_t v[8];
    uint64_t fp = bn_model_fingerprint(ctx->model);
    memset(hd, 0, BN__STATE_HEADER);
    memcpy(hd, "BNSTATE", 8);
    v[0] = BN_SEQ_STATE_VERSION;
    v[1] = BN__STATE_BOM;
    memcpy(hd + 8, v, 8);
    memcpy(hd + 16, &fp, 8);
    v[0] = (uint32_t)ctx->params.kv_type;
    v[1] = (uint32_t)c->n_layers;
    v[2] = (uint32_t)c->n_kv_heads;
    v[3] = (uint32_t)c->head_dim;
    v[4] = (uint32_t)n;
    memcpy(hd + 24, v, 20);
    memcpy(hd + 44, BITNET_VERSION, BN_MIN(sizeof BITNET_VERSION, 15));
}

static void bn__state_write(const bn_context *ctx, int seq, bn__state_out *o) {
    const bn_config *c = &ctx->model->config;
    unsigned char hd[BN__STATE_HEADER];
    int n = ctx->seq_len[seq], l, h, kv;
    size_t rows = bn__kv_offset(ctx, 0, 0, 0, n); /* bytes of n rows of one head */
    o->h = 14695981039346656037ull;
    bn__state_header(ctx, n, hd);
    bn__state_put(o, hd, sizeof hd, 1);
    bn__state_put(o, ctx->seq_tokens + (size_t)seq * ctx->params.n_ctx, 4 * (size_t)n, 1);
    for (kv = 0; kv < 2; kv++)
        for (l = 0; l < c->n_layers; l++)
            for (h = 0; h < c->n_kv_heads; h++)
                bn__state_put(o, (kv ? ctx->v_cache : ctx->k_cache) + bn__kv_offset(ctx, seq, l, h, 0), rows, 1);
    bn__state_put(o, &o->h, 8, 0);
}

BN_API bn_status bn_seq_state_save(const bn_context *ctx, int seq, void *buf, size_t cap, size_t *written, bn_error *err) {
    bn__state_out o;
    if (written) *written = 0;
    if (seq < 0 || seq >= ctx->params.n_seq)
        return bn_errorf(err, BN_ERR_ARG, "state: sequence %d is not in [0, %d)", seq, ctx->params.n_seq);
    if (cap < bn_seq_state_size(ctx, seq))
        return bn_errorf(err, BN_ERR_ARG, "state: a buffer of %lu bytes is too small for %lu (bn_seq_state_size)",
                         (unsigned long)cap, (unsigned long)bn_seq_state_size(ctx, seq));
    memset(&o, 0, sizeof o);
    o.buf = (unsigned char *)buf;
    o.cap = cap;
    bn__state_write(ctx, seq, &o);
    if (written) *written = o.pos;
    return BN_OK;
}

BN_API bn_status bn_seq_state_save_file(const bn_context *ctx, int seq, const char *path, bn_error *err) {
    bn__state_out o;
    char *tmp;
    size_t n = strlen(path);
    if (seq < 0 || seq >= ctx->params.n_seq)
        return bn_errorf(err, BN_ERR_ARG, "state: sequence %d is not in [0, %d)", seq, ctx->params.n_seq);
    tmp = (char *)BN_MALLOC(n + 5);
    if (!tmp) return bn_errorf(err, BN_ERR_NOMEM, "state: out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5); /* written whole, then renamed: a reader never sees half a file */
    memset(&o, 0, sizeof o);
    o.f = fopen(tmp, "wb");
    if (!o.f) {
        BN_FREE(tmp);
        return bn_errorf(err, BN_ERR_IO, "%s: cannot create the state file", path);
    }
    bn__state_write(ctx, seq, &o);
    if (fclose(o.f) != 0) o.fail = 1;
    if (!o.fail && rename(tmp, path) != 0) { /* Windows: rename does not replace */
        remove(path);
        o.fail = rename(tmp, path) != 0;
    }
    if (o.fail) remove(tmp);
    BN_FREE(tmp);
    return o.fail ? bn_errorf(err, BN_ERR_IO, "%s: cannot write the state file", path) : BN_OK;
}

static uint32_t bn__state_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

BN_API bn_status bn_seq_state_load(bn_context *ctx, int seq, const void *buf, size_t len, bn_error *err) {
    const bn_config *c = &ctx->model->config;
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t fp, mine, sum;
    uint32_t n, kv_type;
    size_t rows, need, at;
    char writer[16];
    int l, h, kv, same_shape;
    if (seq < 0 || seq >= ctx->params.n_seq)
        return bn_errorf(err, BN_ERR_ARG, "state: sequence %d is not in [0, %d)", seq, ctx->params.n_seq);
    if (len < 8 || memcmp(p, "BNSTATE", 8) != 0)
        return bn_errorf(err, BN_ERR_FORMAT, "state: not a bitnet.h sequence state (no \"BNSTATE\" at its start)");
    if (len < BN__STATE_HEADER + 8)
        return bn_errorf(err, BN_ERR_FORMAT, "state: truncated: %lu bytes, not even a header", (unsigned long)len);
    memcpy(writer, p + 44, 15);
    writer[15] = 0;
    if (bn__state_u32(p + 12) != BN__STATE_BOM)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "state: written on a machine of the other byte order");
    if (bn__state_u32(p + 8) != BN_SEQ_STATE_VERSION)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "state: format version %lu (written by bitnet.h %s); this build reads version %d",
                         (unsigned long)bn__state_u32(p + 8), writer, BN_SEQ_STATE_VERSION);
    kv_type = bn__state_u32(p + 24);
    n = bn__state_u32(p + 40);
    same_shape = (kv_type == BN_FTYPE_F32 || kv_type == BN_FTYPE_F16) && bn__state_u32(p + 28) == (uint32_t)c->n_layers &&
                 bn__state_u32(p + 32) == (uint32_t)c->n_kv_heads && bn__state_u32(p + 36) == (uint32_t)c->head_dim &&
                 n <= (1u << 28);
    rows = (size_t)n * c->head_dim * (kv_type == BN_FTYPE_F16 ? 2 : 4);
    need = BN__STATE_HEADER + 4 * (size_t)n + 2 * (size_t)c->n_layers * c->n_kv_heads * rows + 8;
    memcpy(&sum, p + len - 8, 8);
    if (bn__state_hash(14695981039346656037ull, p, len - 8) != sum) { /* not as written: cut short, or changed */
        if (same_shape && len < need)
            return bn_errorf(err, BN_ERR_FORMAT, "state: truncated: %lu bytes, its header says %lu", (unsigned long)len,
                             (unsigned long)need);
        return bn_errorf(err, BN_ERR_FORMAT, "state: checksum mismatch: the data is corrupted");
    }
    memcpy(&fp, p + 16, 8);
    mine = bn_model_fingerprint(ctx->model);
    if (!same_shape || fp != mine)
        return bn_errorf(err, BN_ERR_ARG,
                         "state: made for another model (%lu layers x %lu K/V heads x %lu, fingerprint %016llx; this "
                         "model %d x %d x %d, %016llx)",
                         (unsigned long)bn__state_u32(p + 28), (unsigned long)bn__state_u32(p + 32),
                         (unsigned long)bn__state_u32(p + 36), (unsigned long long)fp, c->n_layers, c->n_kv_heads,
                         c->head_dim, (unsigned long long)mine);
    if (len != need)
        return bn_errorf(err, BN_ERR_FORMAT, "state: %lu bytes, its header says %lu", (unsigned long)len, (unsigned long)need);
    if (kv_type != (uint32_t)ctx->params.kv_type)
        return bn_errorf(err, BN_ERR_ARG, "state: its KV cache is %s, this context's is %s (bn_context_params.kv_type)",
                         kv_type == BN_FTYPE_F16 ? "f16" : "f32", ctx->params.kv_type == BN_FTYPE_F16 ? "f16" : "f32");
    if (n > (uint32_t)ctx->params.n_ctx)
        return bn_errorf(err, BN_ERR_CONTEXT_FULL, "state: %lu tokens do not fit a context of %d", (unsigned long)n,
                         ctx->params.n_ctx);
    for (at = 0; at < n; at++) {
        int32_t t = (int32_t)bn__state_u32(p + BN__STATE_HEADER + 4 * at);
        if (t < 0 || t >= c->vocab_size)
            return bn_errorf(err, BN_ERR_FORMAT, "state: token %ld at position %lu is outside the vocabulary", (long)t,
                             (unsigned long)at);
    }
    memcpy(ctx->seq_tokens + (size_t)seq * ctx->params.n_ctx, p + BN__STATE_HEADER, 4 * (size_t)n);
    at = BN__STATE_HEADER + 4 * (size_t)n;
    for (kv = 0; kv < 2; kv++)
        for (l = 0; l < c->n_layers; l++)
            for (h = 0; h < c->n_kv_heads; h++, at += rows)
                memcpy((kv ? ctx->v_cache : ctx->k_cache) + bn__kv_offset(ctx, seq, l, h, 0), p + at, rows);
    ctx->seq_len[seq] = (int)n;
    return BN_OK;
}

BN_API bn_status bn_seq_state_load_file(bn_context *ctx, int seq, const char *path, bn_error *err) {
    char *data;
    size_t len;
    bn_status st = bn_read_file(path, &data, &len, err);
    if (st) return st;
    st = bn_seq_state_load(ctx, seq, data, len, err);
    BN_FREE(data);
    if (st && err) { /* name the file */
        char msg[BN_ERROR_MSG_MAX];
        memcpy(msg, err->msg, sizeof msg);
        bn_errorf(err, st, "%s: %.400s", path, msg);
    }
    return st;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_FORWARD_H */
