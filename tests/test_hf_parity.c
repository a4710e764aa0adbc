/* Parity with HuggingFace transformers: the fixtures in tests/fixtures/hf hold
   small random-weight BitNet checkpoints (3 cases x 3 weight variants) and the
   logits, hidden states and greedy tokens that HF computed on them in float32.
   Every number compared here comes from those files. */
#define BITNET_IMPLEMENTATION
#ifndef HF_PARITY_NAME
#define HF_PARITY_NAME "hf_parity"
#endif
#include "../bitnet.h"
#include "harness.h"
#include <float.h>
#include <pthread.h>

#define TOL 1e-3

static const char *const cases[] = {"tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"};
static const char *const variants[] = {"master", "packed", "packed-autobit"};
static const bn_weight_variant variant_ids[] = {BN_WEIGHTS_MASTER, BN_WEIGHTS_BITLINEAR, BN_WEIGHTS_AUTOBITLINEAR};

/* Activation quantization is discontinuous: x * a on a rounding tie (k + 0.5)
   rounds to one side in HF and may round to the other here when the two
   float computations differ in the last bit. That flips one int8 activation
   and moves everything downstream by ~1e-2, which is float rounding, not a
   bug. We detect it from our own hidden states: the input of layer l is
   hidden.l, normed by input_layernorm and quantized as bn_quantize_act does.
   Returns the first token whose attention input lies within a few ulp of a
   tie (or -1), and describes it in *why. */
static int first_near_tie(const char *model_dir, const bn_config *cfg, const float *hidden, int n_tokens,
                          char *why, size_t why_len) {
    bn_safetensors *st = NULL;
    bn_error err;
    float *w = (float *)malloc(sizeof(float) * cfg->hidden_size), *xn = (float *)malloc(sizeof(float) * cfg->hidden_size);
    int l, t, i, found = -1, hid = cfg->hidden_size;
    if (bn_safetensors_load(&st, model_dir, &err) != BN_OK) {
        free(w);
        free(xn);
        return -1;
    }
    for (l = 0; l < cfg->n_layers; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if (bn_safetensors_read_f32(bn_safetensors_find(st, name), w, &err) != BN_OK) break;
        for (t = 0; t < n_tokens && (found < 0 || t < found); t++) {
            const float *x = hidden + ((size_t)l * n_tokens + t) * hid;
            double ss = 0.0; /* as the library's RMSNorm */
            float inv, amax = 0.0f, a;
            for (i = 0; i < hid; i++) ss += (double)x[i] * x[i];
            inv = 1.0f / sqrtf((float)(ss / hid) + cfg->rms_norm_eps);
            for (i = 0; i < hid; i++) { xn[i] = w[i] * (x[i] * inv); amax = fmaxf(amax, fabsf(xn[i])); }
            a = 127.0f / fmaxf(amax, 1e-5f);
            for (i = 0; i < hid; i++) {
                float v = xn[i] * a, frac = v - floorf(v);
                if (fabsf(frac - 0.5f) <= 4.0f * FLT_EPSILON * fmaxf(fabsf(v), 1.0f)) {
                    found = t;
                    snprintf(why, why_len, "layer %d token %d: x*a = %.7f is %.1e from a rounding tie", l, t, (double)v,
                             (double)fabsf(frac - 0.5f));
                    break;
                }
            }
        }
    }
    bn_safetensors_free(st);
    free(w);
    free(xn);
    return found;
}

static double top2_gap(const float *x, int n) {
    float a = -INFINITY, b = -INFINITY;
    int k;
    for (k = 0; k < n; k++) {
        if (x[k] > a) { b = a; a = x[k]; }
        else if (x[k] > b) b = x[k];
    }
    return (double)(a - b);
}

/* A reference tensor as f32 (or int32 read as float), BN_MALLOC'd; NULL if absent. */
static float *ref_tensor(const bn_safetensors *ref, const char *variant, const char *what, size_t *n) {
    char name[128];
    const bn_safetensors_tensor *t;
    float *out;
    bn_error err;
    if (variant) snprintf(name, sizeof name, "%s.%s", variant, what);
    else snprintf(name, sizeof name, "%s", what);
    t = bn_safetensors_find(ref, name);
    BNT_CHECKF(t != NULL, "reference tensor %s", name);
    if (!t) return NULL;
    *n = (size_t)bn_safetensors_numel(t);
    out = (float *)malloc(*n * sizeof(float));
    BNT_CHECK(bn_safetensors_read_f32(t, out, &err) == BN_OK);
    return out;
}

/* Compare logits [n_tokens x vocab] with the reference: within TOL, or, only
   when a rounding tie was detected at token `tie`, tokens before it within TOL
   and all of them below LOOSE (a gross bug still fails). */
#define LOOSE 5e-2
static double check_logits(const char *label, const float *got, const float *ref, int n_tokens, int vocab, int tie) {
    double e_all = bnt_rel_l2(got, ref, (size_t)n_tokens * vocab);
    if (tie < 0 || e_all <= TOL) { /* the tie excuses only what fails the strict bound */
        BNT_CHECKF(e_all <= TOL, "%s: logits rel L2 %.3g", label, e_all);
    } else {
        double e_before = tie > 0 ? bnt_rel_l2(got, ref, (size_t)tie * vocab) : 0.0;
        BNT_CHECKF(e_before <= TOL, "%s: logits before the tie, rel L2 %.3g", label, e_before);
        BNT_CHECKF(e_all <= LOOSE, "%s: logits rel L2 %.3g even with a tie", label, e_all);
        printf("    %s: tokens 0..%d rel L2 %.3e; all tokens %.3e (rounding tie at token %d)\n", label, tie - 1, e_before,
               e_all, tie);
    }
    return e_all;
}

/* bn_model_linear / bn_model_lm_head give the matrices with HF's shapes [out, in], and NULL
   outside the model. */
static void check_weight_shapes(const bn_model *m, const bn_config *c) {
    const int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    const int rows[7] = {q, kv, kv, c->hidden_size, c->intermediate_size, c->intermediate_size, c->hidden_size};
    const int cols[7] = {c->hidden_size, c->hidden_size, c->hidden_size, q, c->hidden_size, c->hidden_size,
                         c->intermediate_size};
    int l, k;
    for (l = 0; l < c->n_layers; l++)
        for (k = 0; k < 7; k++) {
            const bn_tmat *t = bn_model_linear(m, l, k);
            BNT_CHECKF(t && t->rows == rows[k] && t->cols == cols[k], "layer %d linear %d", l, k);
        }
    BNT_CHECK(bn_model_linear(m, c->n_layers, 0) == NULL && bn_model_linear(m, 0, 7) == NULL &&
              bn_model_linear(m, -1, 0) == NULL);
    BNT_CHECK(bn_model_lm_head(m)->rows == c->vocab_size && bn_model_lm_head(m)->cols == c->hidden_size);
}

static void check_case(int ci, int vi) {
    char dir[256], refpath[256], why[160];
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_safetensors *ref = NULL;
    bn_error err;
    bn_context_params cp;
    const bn_config *cfg;
    size_t n_ids = 0, n_logits = 0, n_greedy = 0, mapped, allocated;
    float *ids_f = NULL, *ref_logits = NULL, *ref_greedy = NULL, *logits = NULL, *hidden = NULL, *step_hidden = NULL;
    int32_t ids[64], pos[64];
    int n_prompt, vocab, hid, t, l, g, mismatch = -1, tie = -1, decode_tie = -1;
    double e_full, e_step, e_hidden_max = 0.0;

    snprintf(dir, sizeof dir, BNT_FIXTURES "/hf/%s/%s", cases[ci], variants[vi]);
    snprintf(refpath, sizeof refpath, BNT_FIXTURES "/hf/%s/reference.safetensors", cases[ci]);
    BNT_CHECKF(bn_model_load(&model, dir, NULL, &err) == BN_OK, "%s: %s", dir, err.msg);
    BNT_CHECKF(bn_safetensors_load(&ref, refpath, &err) == BN_OK, "%s", err.msg);
    if (!model || !ref) goto done;
    cfg = bn_model_config(model);
    BNT_CHECK(cfg->variant == variant_ids[vi]);
    vocab = cfg->vocab_size;
    hid = cfg->hidden_size;
    bn_model_memory(model, &mapped, &allocated);
    BNT_CHECK(mapped > 0 && allocated > 0);
    check_weight_shapes(model, cfg);

    ids_f = ref_tensor(ref, NULL, "input_ids", &n_ids);
    ref_logits = ref_tensor(ref, variants[vi], "logits", &n_logits);
    ref_greedy = ref_tensor(ref, variants[vi], "greedy", &n_greedy);
    if (!ids_f || !ref_logits || !ref_greedy) goto done;
    n_prompt = (int)n_ids;
    BNT_CHECK(n_logits == (size_t)n_prompt * vocab);
    for (t = 0; t < n_prompt; t++) {
        ids[t] = (int32_t)ids_f[t];
        pos[t] = t;
    }

    cp = bn_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 16;
    cp.n_threads = 1;
    BNT_CHECKF(bn_context_new(&ctx, model, &cp, &err) == BN_OK, "%s", err.msg);
    if (!ctx) goto done;
    logits = (float *)malloc(sizeof(float) * (size_t)n_prompt * vocab);
    hidden = (float *)malloc(sizeof(float) * (size_t)(cfg->n_layers + 1) * n_prompt * hid);
    step_hidden = (float *)malloc(sizeof(float) * (size_t)(cfg->n_layers + 1) * hid);

    /* 1. the whole prompt in one call, logits for every token, hidden states captured */
    {
        bn_batch b;
        int8_t want[64];
        memset(&b, 0, sizeof b);
        for (t = 0; t < n_prompt; t++) want[t] = 1;
        b.n_tokens = n_prompt;
        b.token = ids;
        b.pos = pos;
        b.want_logits = want;
        bn_context_capture_hidden(ctx, hidden);
        BNT_CHECKF(bn_forward(ctx, &b, &err) == BN_OK, "%s", err.msg);
        bn_context_capture_hidden(ctx, NULL);
        for (t = 0; t < n_prompt; t++) {
            const float *lg = bn_get_logits(ctx, t);
            BNT_CHECK(lg != NULL);
            if (lg) memcpy(logits + (size_t)t * vocab, lg, sizeof(float) * vocab);
        }
        tie = first_near_tie(dir, cfg, hidden, n_prompt, why, sizeof why);
        if (tie >= 0) printf("    %s/%s: near a rounding tie at %s\n", cases[ci], variants[vi], why);
        e_full = check_logits("prompt in one call", logits, ref_logits, n_prompt, vocab, tie);
        for (l = 0; l <= cfg->n_layers; l++) {
            char what[32];
            size_t nh = 0;
            float *rh;
            double e, e_before;
            snprintf(what, sizeof what, "hidden.%d", l);
            rh = ref_tensor(ref, variants[vi], what, &nh);
            if (!rh) continue;
            BNT_CHECK(nh == (size_t)n_prompt * hid);
            e = bnt_rel_l2(hidden + (size_t)l * n_prompt * hid, rh, nh);
            e_before = tie < 0 || e <= TOL ? e : tie == 0 ? 0.0 : bnt_rel_l2(hidden + (size_t)l * n_prompt * hid, rh, (size_t)tie * hid);
            BNT_CHECKF(e_before <= TOL, "hidden.%d rel L2 %.3g", l, e_before);
            BNT_CHECKF(e <= LOOSE, "hidden.%d rel L2 %.3g", l, e);
            if (e > e_hidden_max) e_hidden_max = e;
            free(rh);
        }
    }

    /* 2. the same prompt one token at a time through the KV cache */
    bn_context_reset(ctx);
    for (t = 0; t < n_prompt; t++) {
        const float *lg;
        BNT_CHECKF(bn_eval(ctx, 0, &ids[t], 1, &err) == BN_OK, "%s", err.msg);
        lg = bn_get_logits(ctx, -1);
        if (lg) memcpy(logits + (size_t)t * vocab, lg, sizeof(float) * vocab);
    }
    e_step = check_logits("prompt token by token", logits, ref_logits, n_prompt, vocab, tie);

    /* 3. greedy continuation (the KV cache now holds the prompt); each step's
       input is HF's token so that later steps stay comparable */
    bn_context_capture_hidden(ctx, step_hidden);
    for (g = 0; g < (int)n_greedy; g++) {
        const float *lg = bn_get_logits(ctx, -1);
        int32_t next;
        if (!lg) break;
        next = bnt_argmax(lg, vocab);
        if (next != (int32_t)ref_greedy[g] && mismatch < 0) {
            mismatch = g;
            printf("    greedy step %d: got %d, HF %d; our top-2 gap %.3g", g, next, (int)ref_greedy[g], top2_gap(lg, vocab));
            if (g == 0) printf(", HF's own top-2 gap %.3g", top2_gap(ref_logits + (size_t)(n_prompt - 1) * vocab, vocab));
            printf("\n");
        }
        next = (int32_t)ref_greedy[g];
        BNT_CHECKF(bn_eval(ctx, 0, &next, 1, &err) == BN_OK, "%s", err.msg);
        if (decode_tie < 0 && first_near_tie(dir, cfg, step_hidden, 1, why, sizeof why) >= 0) {
            decode_tie = g;
            printf("    decode step %d: %s\n", g, why);
        }
    }
    bn_context_capture_hidden(ctx, NULL);
    /* a differing token is excused only by a rounding tie at or before it */
    BNT_CHECKF(mismatch < 0 || tie >= 0 || (decode_tie >= 0 && decode_tie < mismatch),
               "greedy continuation differs from HF at step %d with no rounding tie before it", mismatch);
    printf("    %-15s %-14s logits(prompt) %.3e  logits(step) %.3e  hidden(max) %.3e  greedy %s  mapped %lu B, allocated %lu B\n",
           cases[ci], variants[vi], e_full, e_step, e_hidden_max, mismatch < 0 ? "24/24" : "DIFFERS",
           (unsigned long)mapped, (unsigned long)allocated);
done:
    free(ids_f);
    free(ref_logits);
    free(ref_greedy);
    free(logits);
    free(hidden);
    free(step_hidden);
    bn_context_free(ctx);
    bn_safetensors_free(ref);
    bn_model_free(model);
}

static void test_tiny_gqa_tied(void) { int v; for (v = 0; v < 3; v++) check_case(0, v); }
static void test_tiny_mha_untied(void) { int v; for (v = 0; v < 3; v++) check_case(1, v); }
static void test_llama_bitnet(void) { int v; for (v = 0; v < 3; v++) check_case(2, v); }

/* Two sequences in one batch, interleaved, each gets its own KV slot: both
   must match HF's logits. Then copy a sequence and check the copy decodes alike. */
static void test_multi_sequence_batch(void) {
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_safetensors *ref = NULL;
    bn_error err;
    bn_context_params cp = bn_context_default_params();
    size_t n_ids = 0, n_logits = 0;
    float *ids_f, *ref_logits, *out;
    int32_t tok[64], pos[64], seq[64];
    int8_t want[64];
    int n, t, vocab;
    bn_batch b;
    double e;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", NULL, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(bn_safetensors_load(&ref, BNT_FIXTURES "/hf/tiny-gqa-tied/reference.safetensors", &err) == BN_OK);
    if (!model || !ref) {
        bn_model_free(model);
        bn_safetensors_free(ref);
        return;
    }
    vocab = bn_model_config(model)->vocab_size;
    ids_f = ref_tensor(ref, NULL, "input_ids", &n_ids);
    ref_logits = ref_tensor(ref, "packed", "logits", &n_logits);
    n = (int)n_ids;
    cp.n_ctx = 32;
    cp.n_seq = 3;
    cp.n_batch = 32;
    BNT_CHECKF(bn_context_new(&ctx, model, &cp, &err) == BN_OK, "%s", err.msg);
    out = (float *)calloc((size_t)n * vocab, sizeof(float));
    BNT_CHECK(out && n > 0 && 2 * n <= 32);
    if (!out || n <= 0 || 2 * n > 32) {
        free(out);
        bn_context_free(ctx);
        bn_model_free(model);
        bn_safetensors_free(ref);
        return;
    }
    /* seq 1 gets the prompt at even batch slots, seq 2 at odd ones */
    for (t = 0; t < 2 * n; t++) {
        tok[t] = (int32_t)ids_f[t / 2];
        pos[t] = t / 2;
        seq[t] = 1 + (t % 2);
        want[t] = 1;
    }
    memset(&b, 0, sizeof b);
    b.n_tokens = 2 * n;
    b.token = tok;
    b.pos = pos;
    b.seq = seq;
    b.want_logits = want;
    BNT_CHECKF(bn_forward(ctx, &b, &err) == BN_OK, "%s", err.msg);
    for (t = 0; t < 2 * n; t++) memcpy(out + (size_t)(t / 2) * vocab, bn_get_logits(ctx, t), sizeof(float) * vocab);
    e = bnt_rel_l2(out, ref_logits, n_logits); /* the odd slots (sequence 2) were written last */
    BNT_CHECKF(e <= TOL, "interleaved sequences: rel L2 %.3g", e);
    for (t = 0; t < n; t++) BNT_CHECK(memcmp(bn_get_logits(ctx, 2 * t), bn_get_logits(ctx, 2 * t + 1), sizeof(float) * vocab) == 0);
    BNT_CHECK(bn_seq_len(ctx, 0) == 0 && bn_seq_len(ctx, 1) == n && bn_seq_len(ctx, 2) == n);
    /* copy sequence 1 into 0, decode the same token in both: same logits */
    BNT_CHECK(bn_seq_copy(ctx, 1, 0, &err) == BN_OK && bn_seq_len(ctx, 0) == n);
    tok[0] = tok[1] = 7;
    pos[0] = pos[1] = n;
    seq[0] = 0;
    seq[1] = 1;
    b.n_tokens = 2;
    BNT_CHECKF(bn_forward(ctx, &b, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(memcmp(bn_get_logits(ctx, 0), bn_get_logits(ctx, 1), sizeof(float) * vocab) == 0);
    /* truncate back and redo: identical to the first time */
    memcpy(out, bn_get_logits(ctx, 1), sizeof(float) * vocab);
    bn_seq_truncate(ctx, 1, n);
    BNT_CHECK(bn_eval(ctx, 1, tok, 1, &err) == BN_OK);
    BNT_CHECK(memcmp(out, bn_get_logits(ctx, -1), sizeof(float) * vocab) == 0);
    free(out);
    free(ids_f);
    free(ref_logits);
    bn_context_free(ctx);
    bn_safetensors_free(ref);
    bn_model_free(model);
}

/* Bad batches are refused before anything changes; a full context says so. */
static void test_batch_errors_and_context_full(void) {
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_error err;
    bn_context_params cp = bn_context_default_params();
    int32_t tok[20], pos[4] = {0, 1, 3, 0}, seq[4] = {0, 0, 0, 5};
    bn_batch b;
    int i;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-mha-untied/packed-autobit", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    cp.n_ctx = 16;
    cp.n_batch = 8;
    BNT_CHECKF(bn_context_new(&ctx, model, &cp, &err) == BN_OK, "%s", err.msg);
    for (i = 0; i < 20; i++) tok[i] = i;
    memset(&b, 0, sizeof b);
    b.token = tok;
    b.pos = pos;
    b.n_tokens = 3; /* positions 0, 1, 3: a gap */
    BNT_CHECK(bn_forward(ctx, &b, &err) == BN_ERR_ARG && strstr(err.msg, "position 3"));
    BNT_CHECK(bn_seq_len(ctx, 0) == 0);
    b.seq = seq;
    b.n_tokens = 4; /* sequence 5 does not exist */
    pos[2] = 2;
    BNT_CHECK(bn_forward(ctx, &b, &err) == BN_ERR_ARG && strstr(err.msg, "sequence 5"));
    tok[0] = 777; /* vocab is 777 */
    b.n_tokens = 1;
    BNT_CHECK(bn_forward(ctx, &b, &err) == BN_ERR_ARG && strstr(err.msg, "token 777"));
    tok[0] = 0;
    BNT_CHECK(bn_eval(ctx, 0, tok, 20, &err) == BN_ERR_CONTEXT_FULL);
    BNT_CHECK(bn_seq_len(ctx, 0) == 0);
    BNT_CHECKF(bn_eval(ctx, 0, tok, 16, &err) == BN_OK, "%s", err.msg); /* two batches of 8 */
    BNT_CHECK(bn_seq_len(ctx, 0) == 16);
    BNT_CHECK(bn_eval(ctx, 0, tok, 1, &err) == BN_ERR_CONTEXT_FULL);
    printf("    %s\n", err.msg);
    BNT_CHECK(strstr(err.msg, "16") != NULL);
    bn_context_free(ctx);
    bn_model_free(model);
}

/* lm_head converted at load (params.head_type): f32 must still match HF;
   int8 rows are an approximation, held to a looser bound. Tied and untied. */
static void head_type_case(const char *name, bn_ftype type, double bound) {
    char dir[256], refpath[256];
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_safetensors *ref = NULL;
    bn_model_params mp = bn_model_default_params();
    bn_error err;
    size_t n_ids = 0, n_logits = 0;
    float *ids_f, *ref_logits, *logits;
    int32_t ids[64];
    int t, n, vocab;
    double e;
    snprintf(dir, sizeof dir, BNT_FIXTURES "/hf/%s/packed", name);
    snprintf(refpath, sizeof refpath, BNT_FIXTURES "/hf/%s/reference.safetensors", name);
    mp.head_type = type;
    mp.head_type_set = 1;
    BNT_CHECKF(bn_model_load(&model, dir, &mp, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(bn_safetensors_load(&ref, refpath, &err) == BN_OK);
    if (!model || !ref) {
        bn_model_free(model);
        bn_safetensors_free(ref);
        return;
    }
    vocab = bn_model_config(model)->vocab_size;
    ids_f = ref_tensor(ref, NULL, "input_ids", &n_ids);
    ref_logits = ref_tensor(ref, "packed", "logits", &n_logits);
    n = (int)n_ids;
    for (t = 0; t < n; t++) ids[t] = (int32_t)ids_f[t];
    BNT_CHECK(bn_context_new(&ctx, model, NULL, &err) == BN_OK);
    logits = (float *)malloc(sizeof(float) * (size_t)n * vocab);
    for (t = 0; t < n; t++) { /* one token at a time: every logits row */
        BNT_CHECK(bn_eval(ctx, 0, &ids[t], 1, &err) == BN_OK);
        memcpy(logits + (size_t)t * vocab, bn_get_logits(ctx, -1), sizeof(float) * vocab);
    }
    e = bnt_rel_l2(logits, ref_logits, n_logits);
    printf("    %s lm_head as %s: logits rel L2 %.3e\n", name, type == BN_FTYPE_F32 ? "f32" : type == BN_FTYPE_I8 ? "int8" : "f16", e);
    BNT_CHECKF(e <= bound, "rel L2 %.3g > %.3g", e, bound);
    free(logits);
    free(ids_f);
    free(ref_logits);
    bn_context_free(ctx);
    bn_safetensors_free(ref);
    bn_model_free(model);
}

static void test_head_types(void) {
    head_type_case("tiny-gqa-tied", BN_FTYPE_F32, TOL);
    head_type_case("tiny-mha-untied", BN_FTYPE_F32, TOL);
    head_type_case("tiny-mha-untied", BN_FTYPE_F16, TOL);
    head_type_case("tiny-gqa-tied", BN_FTYPE_I8, 2e-2);
    head_type_case("llama-bitnet", BN_FTYPE_I8, 2e-2);
}

/* One model, read-only, shared by threads that each own a context: every
   thread's logits equal the single-threaded ones bit for bit. */
typedef struct share_job {
    const bn_model *model;
    const int32_t *ids;
    int n;
    float *out; /* last logits */
    int ok;
} share_job;

static void *share_worker(void *arg) {
    share_job *j = (share_job *)arg;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_error err;
    int vocab = bn_model_config(j->model)->vocab_size;
    cp.n_ctx = 32;
    cp.n_threads = 1;
    j->ok = bn_context_new(&ctx, j->model, &cp, &err) == BN_OK && bn_eval(ctx, 0, j->ids, j->n, &err) == BN_OK;
    if (j->ok) memcpy(j->out, bn_get_logits(ctx, -1), sizeof(float) * vocab);
    bn_context_free(ctx);
    return NULL;
}

static void test_shared_model_threads(void) {
    bn_model *model = NULL;
    bn_error err;
    share_job jobs[4];
    pthread_t th[4];
    int32_t ids[4][8];
    float *out;
    int i, t, vocab;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/llama-bitnet/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    vocab = bn_model_config(model)->vocab_size;
    out = (float *)malloc(sizeof(float) * 8 * vocab);
    for (i = 0; i < 4; i++) {
        for (t = 0; t < 8; t++) ids[i][t] = (int32_t)((i * 131 + t * 17) % vocab);
        jobs[i].model = model;
        jobs[i].ids = ids[i];
        jobs[i].n = 8;
        jobs[i].out = out + (size_t)i * vocab;
        share_worker(&jobs[i]); /* reference, one at a time */
        BNT_CHECK(jobs[i].ok);
        jobs[i].out = out + (size_t)(4 + i) * vocab;
    }
    for (i = 0; i < 4; i++) pthread_create(&th[i], NULL, share_worker, &jobs[i]);
    for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 4; i++) {
        BNT_CHECK(jobs[i].ok);
        BNT_CHECK(memcmp(out + (size_t)i * vocab, out + (size_t)(4 + i) * vocab, sizeof(float) * vocab) == 0);
    }
    free(out);
    bn_model_free(model);
}

/* Every kernel the CPU has, and the scalar reference, give HF's logits. */
static void test_kernels_each(void) {
    bn_kernel kernels[2];
    int k, t, n;
    kernels[0] = BN_KERNEL_SCALAR;
    kernels[1] = bn_kernel_detect();
    for (k = 0; k < 2; k++) {
        bn_model *model = NULL;
        bn_context *ctx = NULL;
        bn_safetensors *ref = NULL;
        bn_context_params cp = bn_context_default_params();
        bn_error err;
        size_t n_ids = 0, n_logits = 0;
        float *ids_f, *ref_logits, *logits;
        int32_t ids[64], pos[64];
        int8_t want[64];
        int vocab;
        bn_batch b;
        double e;
        BNT_CHECK(bn_model_load(&model, BNT_FIXTURES "/hf/llama-bitnet/packed-autobit", NULL, &err) == BN_OK);
        BNT_CHECK(bn_safetensors_load(&ref, BNT_FIXTURES "/hf/llama-bitnet/reference.safetensors", &err) == BN_OK);
        if (!model || !ref) {
            bn_model_free(model);
            bn_safetensors_free(ref);
            return;
        }
        vocab = bn_model_config(model)->vocab_size;
        ids_f = ref_tensor(ref, NULL, "input_ids", &n_ids);
        ref_logits = ref_tensor(ref, "packed-autobit", "logits", &n_logits);
        n = (int)n_ids;
        for (t = 0; t < n; t++) { ids[t] = (int32_t)ids_f[t]; pos[t] = t; want[t] = 1; }
        cp.n_ctx = 32;
        cp.kernel = kernels[k];
        BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_OK);
        BNT_CHECK(bn_context_get_params(ctx)->kernel == kernels[k]);
        memset(&b, 0, sizeof b);
        b.n_tokens = n;
        b.token = ids;
        b.pos = pos;
        b.want_logits = want;
        BNT_CHECK(bn_forward(ctx, &b, &err) == BN_OK);
        logits = (float *)malloc(sizeof(float) * (size_t)n * vocab);
        for (t = 0; t < n; t++) memcpy(logits + (size_t)t * vocab, bn_get_logits(ctx, t), sizeof(float) * vocab);
        e = bnt_rel_l2(logits, ref_logits, n_logits);
        printf("    kernel %s: logits rel L2 %.3e\n", bn_kernel_name(kernels[k]), e);
        BNT_CHECKF(e <= TOL, "kernel %s: rel L2 %.3g", bn_kernel_name(kernels[k]), e);
        free(logits);
        free(ids_f);
        free(ref_logits);
        bn_context_free(ctx);
        bn_safetensors_free(ref);
        bn_model_free(model);
    }
}

int main(void) {
    BNT_RUN(test_tiny_gqa_tied);
    BNT_RUN(test_tiny_mha_untied);
    BNT_RUN(test_llama_bitnet);
    BNT_RUN(test_multi_sequence_batch);
    BNT_RUN(test_batch_errors_and_context_full);
    BNT_RUN(test_head_types);
    BNT_RUN(test_shared_model_threads);
    BNT_RUN(test_kernels_each);
    return bnt_finish(HF_PARITY_NAME);
}
