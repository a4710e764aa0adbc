#ifndef BN_PART_BACKEND_H
#define BN_PART_BACKEND_H
#include "base.h"
#include "ternary_matmul.h"
#include "model.h"
#include "forward.h"
/* Backends: a context whose forward pass runs on another device.

   A backend is a table of plain C functions (no device types in this
   header). Put one in bn_context_params.backend and bn_context_new calls its
   context_new, every bn_forward its forward (after the batch is checked),
   bn_context_free its context_free. The rest of the context stays where it
   is: the KV cache is the context's own memory, allocated in whole pages so
   that a device with unified memory maps it without a copy, and bn_seq_copy,
   bn_seq_truncate and bn_context_reset work on it between forward calls as
   on the CPU. A backend learns where the weights and buffers are from
   bn_backend_view_get; what it computes must match the CPU path (the scalar
   kernels are the reference). bn_context_capture_hidden and
   bn_context_profile do nothing on a backend's context.

   bitnet_metal.m's bn_metal_backend_new makes one for Apple GPUs (Metal); a
   CUDA or Vulkan backend would fill the same table. */

typedef struct bn_backend {
    const char *name;
    void *user; /* the backend's own state (device, compiled kernels), passed to context_new */
    /* Make this context's device state in *state (buffers over the model's
       weights and the context's KV cache). */
    bn_status (*context_new)(void *user, bn_context *ctx, void **state, bn_error *err);
    /* Run a checked batch (positions and sequences are valid): write the
       logits of batch token t, when logits_row[t] >= 0, to row
       logits_row[t] of `logits` (n_out rows of vocab_size floats), and the
       batch's K and V rows to the KV cache. The sequence lengths are the
       caller's to advance. */
    bn_status (*forward)(void *state, const bn_batch *batch, const int *logits_row, int n_out, float *logits,
                         bn_error *err);
    void (*context_free)(void *state);
} bn_backend;

/* One layer's weights: norms as f32 (sub-norms NULL where the architecture
   has none) and the seven ternary linears. */
typedef struct bn_backend_layer {
    const float *attn_norm, *ffn_norm, *attn_sub_norm, *ffn_sub_norm;
    const bn_tmat *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down;
} bn_backend_layer;

/* Where a context's model and buffers live. Every layer's packed matrices
   lie in one block, `weights` (whole pages when it is 16 KB or more); the
   float matrices are tiled bn_fmat. The K (and V) cache row of KV head h,
   sequence s, layer l, position p starts at element
   (((s * n_layers + l) * n_kv_heads + h) * n_ctx + p) * head_dim of
   k_cache (v_cache), elements of kv_type (F32 or F16); each cache is
   kv_bytes long and starts on a page. rope_cos/rope_sin hold the RoPE table
   the CPU path uses: [n_ctx][head_dim / 2]. */
typedef struct bn_backend_view {
    const bn_config *config;
    const bn_fmat *embed, *lm_head;
    const float *final_norm;
    const uint8_t *weights;
    size_t weights_bytes;
    unsigned char *k_cache, *v_cache;
    size_t kv_bytes;
    bn_ftype kv_type;
    int n_ctx, n_seq, n_batch;
    const float *rope_cos, *rope_sin;
} bn_backend_view;

BN_EXTERN_C_BEGIN
BN_API void bn_backend_view_get(const bn_context *ctx, bn_backend_view *view);
BN_API void bn_backend_layer_get(const bn_model *model, int layer, bn_backend_layer *out);

/* Apple GPUs, defined in bitnet_metal.m (not in this header): build that
   file into the program (README: Metal) and
       bn_backend *gpu;
       if (bn_metal_backend_new(&gpu, &err) == BN_OK) cparams.backend = gpu;
   then make contexts as usual; bn_metal_backend_free(gpu) after the last
   one is freed. Errors (no Metal device, a kernel that does not compile, a
   model the kernels do not take) come back as a status and a message. */
extern bn_status bn_metal_backend_new(bn_backend **out, bn_error *err);
extern void bn_metal_backend_free(bn_backend *backend);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

BN_API void bn_backend_view_get(const bn_context *ctx, bn_backend_view *v) {
    const bn_model *m = ctx->model;
    const bn_config *c = &m->config;
    memset(v, 0, sizeof *v);
    v->config = c;
    v->embed = &m->embed;
    v->lm_head = &m->lm_head;
    v->final_norm = m->final_norm;
    v->weights = m->weights.base;
    v->weights_bytes = m->weights.used;
    v->k_cache = ctx->k_cache;
    v->v_cache = ctx->v_cache;
    v->kv_bytes = (size_t)ctx->params.n_seq * c->n_layers * ctx->params.n_ctx * bn__kv_dim(c) * ctx->kv_esize;
    v->kv_type = ctx->params.kv_type;
    v->n_ctx = ctx->params.n_ctx;
    v->n_seq = ctx->params.n_seq;
    v->n_batch = ctx->params.n_batch;
    v->rope_cos = ctx->rope_cos;
    v->rope_sin = ctx->rope_sin;
}

BN_API void bn_backend_layer_get(const bn_model *m, int l, bn_backend_layer *out) {
    const bn_layer *L = &m->layers[l];
    out->attn_norm = L->attn_norm;
    out->ffn_norm = L->ffn_norm;
    out->attn_sub_norm = L->attn_sub_norm;
    out->ffn_sub_norm = L->ffn_sub_norm;
    out->wq = &L->wq;
    out->wk = &L->wk;
    out->wv = &L->wv;
    out->wo = &L->wo;
    out->w_gate = &L->w_gate;
    out->w_up = &L->w_up;
    out->w_down = &L->w_down;
}

static bn_status bn__backend_context_new(bn_context *ctx, bn_error *err) {
    const bn_backend *be = ctx->params.backend;
    if (!be->context_new || !be->forward || !be->context_free)
        return bn_errorf(err, BN_ERR_ARG, "bn_context_new: backend '%s' lacks a function", be->name ? be->name : "?");
    return be->context_new(be->user, ctx, &ctx->backend_state, err);
}

static void bn__backend_context_free(bn_context *ctx) {
    if (ctx->backend_state) ctx->params.backend->context_free(ctx->backend_state);
}

static bn_status bn__backend_forward(bn_context *ctx, const bn_batch *b, int n_out, bn_error *err) {
    int t;
    bn_status s = ctx->params.backend->forward(ctx->backend_state, b, ctx->logits_row, n_out, ctx->logits, err);
    if (s) {
        ctx->n_batch_last = 0; /* no logits: the sequences are as they were */
        return s;
    }
    for (t = 0; t < b->n_tokens; t++)
        if (ctx->logits_row[t] >= 0) ctx->last_row = ctx->logits_row[t];
    bn__advance_seqs(ctx, b);
    return BN_OK;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_BACKEND_H */
