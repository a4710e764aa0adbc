/* bitnet_metal.m's host code, built on Linux with GNUstep against the Metal
   API stand-in (tests/metal/Metal), whose command buffers run the kernels of
   src/metal/bitnet.metal in the emulator: the whole forward on the HF
   fixtures (3 checkpoints x 3 weight variants) against the CPU path, batched
   decoding against solo decoding, the KV-cache operations, other head types
   and layouts, and every error the backend reports. */
#define BITNET_IMPLEMENTATION
#include "../../bitnet.h"
#include "../harness.h"
#include "emulator.h"

/* The stand-in's test controls (tests/metal/Metal/Metal.h, which is Objective-C). */
void MTLStandinFailNext(const char *what);
long MTLStandinLiveObjects(void);
int MTLStandinLastFastMath(void);
long MTLStandinDispatches(void);

#define TOL 1e-4 /* logits, relative L2, GPU against CPU */

static const char *const cases[] = {"tiny-gqa-tied", "tiny-mha-untied", "llama-bitnet"};
static const char *const variants[] = {"master", "packed", "packed-autobit"};
static bn_backend *gpu;

static bn_context *new_ctx(const bn_model *m, const bn_backend *be, int n_seq, bn_ftype kv) {
    bn_context_params cp = bn_context_default_params();
    bn_context *ctx = NULL;
    bn_error err;
    cp.n_ctx = 64;
    cp.n_seq = n_seq;
    cp.n_batch = 16;
    cp.n_threads = 1;
    cp.kv_type = kv;
    cp.backend = be;
    BNT_CHECKF(bn_context_new(&ctx, m, &cp, &err) == BN_OK, "%s", err.msg);
    return ctx;
}

/* HF's prompt and greedy tokens of a fixture. */
static int fixture_tokens(const char *name, const char *variant, int32_t *ids, int32_t *greedy, int *n_greedy) {
    char path[256];
    bn_safetensors *ref = NULL;
    bn_error err;
    float buf[64];
    const bn_safetensors_tensor *t;
    char tname[64];
    int n = 0, i;
    snprintf(path, sizeof path, BNT_FIXTURES "/hf/%s/reference.safetensors", name);
    BNT_CHECKF(bn_safetensors_load(&ref, path, &err) == BN_OK, "%s", err.msg);
    if (!ref) return 0;
    t = bn_safetensors_find(ref, "input_ids");
    if (t && bn_safetensors_numel(t) <= 64 && bn_safetensors_read_f32(t, buf, &err) == BN_OK) {
        n = (int)bn_safetensors_numel(t);
        for (i = 0; i < n; i++) ids[i] = (int32_t)buf[i];
    }
    snprintf(tname, sizeof tname, "%s.greedy", variant);
    t = bn_safetensors_find(ref, tname);
    *n_greedy = 0;
    if (t && bn_safetensors_numel(t) <= 64 && bn_safetensors_read_f32(t, buf, &err) == BN_OK) {
        *n_greedy = (int)bn_safetensors_numel(t);
        for (i = 0; i < *n_greedy; i++) greedy[i] = (int32_t)buf[i];
    }
    bn_safetensors_free(ref);
    return n;
}

/* Max rel L2 of n rows of logits of dev's last forward (batch rows t0..)
   against the CPU's copies in ref. */
static double worst_rows(const bn_context *dev, int t0, int n, const float *ref, int vocab) {
    double worst = 0.0, e;
    int t;
    for (t = 0; t < n; t++) {
        const float *l = bn_get_logits(dev, n == 1 ? -1 : t0 + t);
        e = l ? bnt_rel_l2(l, ref + (size_t)t * vocab, (size_t)vocab) : 1e9;
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* tokens[0..n) appended to sequence 0 of the GPU's context (one bn_forward,
   logits of every token), compared with the CPU's logits ref. Logits off by
   more than TOL are accepted only when one rounding tie explains them: the
   GPU's context is rewound, the forward run again with one of the closest
   ties of the int8 quantization rounded the other way (the emulator's
   bnm_ties_flip), and then it matches the CPU within TOL. */
static double gpu_eval(bn_context *dev, const int32_t *tokens, int n, const float *ref, int vocab, const char *label,
                       int *n_ties) {
    int32_t pos[64];
    int8_t want[64];
    bn_batch b;
    bn_error err;
    bnm_tie ties[4];
    int len = bn_seq_len(dev, 0), t, k, n_cand = 0;
    double e;
    memset(&b, 0, sizeof b);
    for (t = 0; t < n; t++) pos[t] = len + t, want[t] = 1;
    b.n_tokens = n;
    b.token = tokens;
    b.pos = pos;
    b.want_logits = want;
    bnm_ties_reset();
    BNT_CHECKF(bn_forward(dev, &b, &err) == BN_OK, "%s", err.msg);
    e = worst_rows(dev, 0, n, ref, vocab);
    if (e <= TOL) return e;
    while (n_cand < 4 && bnm_ties_closest(n_cand, &ties[n_cand])) n_cand++;
    for (k = 0; k < n_cand && ties[k].distance <= 1e-4f; k++) { /* a few ulp of x * a at most */
        double e2;
        bn_seq_truncate(dev, 0, len);
        bnm_ties_flip(&ties[k]);
        bnm_ties_reset();
        BNT_CHECKF(bn_forward(dev, &b, &err) == BN_OK, "%s", err.msg);
        e2 = worst_rows(dev, 0, n, ref, vocab);
        if (e2 <= TOL) {
            printf("      %s: logits %.2e from the CPU's; x*a = %.7f (%.1e from a rounding tie) rounded the CPU's way: %.2e\n",
                   label, e, (double)ties[k].v, (double)ties[k].distance, e2);
            (*n_ties)++;
            return e2;
        }
    }
    bnm_ties_flip(NULL);
    return e;
}

/* The prompt in one call (logits of every token), then greedy decoding, on
   the CPU and on the GPU: logits within TOL, the same tokens (and HF's). */
static void forward_case(const char *name, const char *variant, const bn_model_params *mp, bn_ftype kv, int n_greedy_max) {
    char dir[256];
    bn_model *model = NULL;
    bn_context *cpu, *dev;
    bn_error err;
    int32_t ids[64], pos[64], greedy_hf[64], tok_cpu[64], tok_gpu[64];
    int8_t want[64];
    int n, n_greedy, vocab, t, g, same = 1, same_hf = 1, n_ties = 0;
    double e_prompt = 0.0, e_step = 0.0, e;
    float *ref = NULL;
    bn_batch b;
    snprintf(dir, sizeof dir, BNT_FIXTURES "/hf/%s/%s", name, variant);
    BNT_CHECKF(bn_model_load(&model, dir, mp, &err) == BN_OK, "%s: %s", dir, err.msg);
    if (!model) return;
    n = fixture_tokens(name, variant, ids, greedy_hf, &n_greedy);
    if (n_greedy > n_greedy_max) n_greedy = n_greedy_max;
    vocab = bn_model_config(model)->vocab_size;
    cpu = new_ctx(model, NULL, 1, kv);
    dev = new_ctx(model, gpu, 1, kv);
    if (!cpu || !dev || !n) goto done;
    memset(&b, 0, sizeof b);
    for (t = 0; t < n; t++) pos[t] = t, want[t] = 1;
    b.n_tokens = n;
    b.token = ids;
    b.pos = pos;
    b.want_logits = want;
    ref = (float *)malloc(sizeof(float) * (size_t)n * vocab);
    BNT_CHECKF(bn_forward(cpu, &b, &err) == BN_OK, "%s", err.msg);
    for (t = 0; t < n; t++) memcpy(ref + (size_t)t * vocab, bn_get_logits(cpu, t), sizeof(float) * vocab);
    e_prompt = gpu_eval(dev, ids, n, ref, vocab, "prompt", &n_ties);
    BNT_CHECK(bn_seq_len(dev, 0) == n && bn_get_logits(dev, -1) == bn_get_logits(dev, n - 1));
    for (g = 0; g < n_greedy; g++) { /* each side feeds its own choice */
        char label[32];
        const float *lc = bn_get_logits(cpu, -1), *lg = bn_get_logits(dev, -1);
        tok_cpu[g] = bnt_argmax(lc, vocab);
        tok_gpu[g] = bnt_argmax(lg, vocab);
        same &= tok_cpu[g] == tok_gpu[g];
        same_hf &= tok_gpu[g] == greedy_hf[g];
        BNT_CHECK(bn_eval(cpu, 0, &tok_cpu[g], 1, &err) == BN_OK);
        memcpy(ref, bn_get_logits(cpu, -1), sizeof(float) * vocab);
        snprintf(label, sizeof label, "decode step %d", g);
        e = gpu_eval(dev, &tok_gpu[g], 1, ref, vocab, label, &n_ties);
        e_step = e > e_step ? e : e_step;
    }
    BNT_CHECKF(e_prompt <= TOL && e_step <= TOL, "%s/%s: logits rel L2 %.3g (prompt), %.3g (decode)", name, variant,
               e_prompt, e_step);
    BNT_CHECKF(same, "%s/%s: greedy tokens differ from the CPU's", name, variant);
    printf("    %-15s %-14s %s kv %s: logits vs CPU %.2e (prompt) %.2e (decode), greedy %d tokens %s%s%s\n", name, variant,
           mp && mp->head_type_set ? (mp->head_type == BN_FTYPE_I8 ? "head i8 " : mp->head_type == BN_FTYPE_F16 ? "head f16" : "head f32")
                                  : (mp && mp->layout == BN_TLAYOUT_TQ1 ? "tq1     " : "        "),
           kv == BN_FTYPE_F16 ? "f16" : "f32", e_prompt, e_step, n_greedy, same ? "= CPU" : "DIFFER from the CPU's",
           same_hf && n_greedy == 24 ? " = HF" : "", n_ties ? " (a rounding tie, see above)" : "");
done:
    free(ref);
    bn_context_free(cpu);
    bn_context_free(dev);
    bn_model_free(model);
}

static void test_fixtures(void) {
    int c, v;
    for (c = 0; c < 3; c++)
        for (v = 0; v < 3; v++) forward_case(cases[c], variants[v], NULL, BN_FTYPE_F32, 24);
}

/* The lm_head converted at load (f16, int8), the TQ1 layout, an f16 KV cache. */
static void test_other_types(void) {
    bn_model_params mp = bn_model_default_params();
    mp.head_type_set = 1;
    mp.head_type = BN_FTYPE_F16;
    forward_case("tiny-mha-untied", "packed", &mp, BN_FTYPE_F32, 8);
    mp.head_type = BN_FTYPE_I8;
    forward_case("tiny-gqa-tied", "packed", &mp, BN_FTYPE_F32, 8);
    mp.head_type = BN_FTYPE_F32;
    forward_case("llama-bitnet", "packed", &mp, BN_FTYPE_F32, 8);
    mp = bn_model_default_params();
    mp.layout = BN_TLAYOUT_TQ1;
    forward_case("llama-bitnet", "master", &mp, BN_FTYPE_F32, 8);
    forward_case("tiny-gqa-tied", "packed-autobit", NULL, BN_FTYPE_F16, 8);
}

/* Batched decoding (bitnet.h's batcher: sequences joining, prompts in
   chunks, one forward per step) equals each sequence decoded alone on the
   GPU, logits bit for bit (each token's numbers do not depend on the batch),
   and the KV-cache operations work on the GPU's context. */
typedef struct seq_log {
    int32_t tokens[4][8];
    float *logits[4];
    int n[4];
} seq_log;

static int log_token(void *user, const bn_token_event *ev) {
    seq_log *L = (seq_log *)user;
    int id = ev->id, V = 1024;
    if (ev->token < 0) return 0; /* the closing call */
    if (L->n[id] < 8) {
        L->tokens[id][L->n[id]] = ev->token;
        memcpy(L->logits[id] + (size_t)L->n[id] * V, ev->logits, sizeof(float) * V);
    }
    L->n[id]++;
    return 0;
}

static void test_batched_equals_solo(void) {
    static const int lens[4] = {9, 4, 12, 6};
    bn_model *model = NULL;
    bn_context *ctx, *solo;
    bn_batcher *b = NULL;
    bn_batcher_params bp = bn_batcher_default_params();
    bn_request_params rp = bn_request_default_params();
    bn_error err;
    seq_log L;
    int32_t prompts[4][12], t0;
    int s, k, id, n_active = 1, steps = 0, V;
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    V = bn_model_config(model)->vocab_size;
    BNT_CHECK(V == 1024);
    memset(&L, 0, sizeof L);
    for (s = 0; s < 4; s++) {
        for (k = 0; k < lens[s]; k++) prompts[s][k] = (int32_t)((k * 131 + s * 57 + 3) % V);
        L.logits[s] = (float *)malloc(sizeof(float) * 8 * (size_t)V);
    }
    ctx = new_ctx(model, gpu, 4, BN_FTYPE_F32);
    bp.prefill_chunk = 5;
    rp.sampler.temperature = 0.0f; /* greedy */
    rp.max_new_tokens = 8;
    rp.ignore_eos = 1;
    rp.on_token = log_token;
    rp.user = &L;
    BNT_CHECK(ctx && bn_batcher_new(&b, ctx, &bp, &err) == BN_OK);
    if (!b) goto done;
    for (s = 0; s < 3; s++) BNT_CHECK(bn_batcher_add(b, prompts[s], lens[s], &rp, &id, &err) == BN_OK && id == s);
    while (n_active > 0 && steps < 100) {
        BNT_CHECKF(bn_batcher_step(b, &n_active, &err) == BN_OK, "%s", err.msg);
        if (++steps == 2) {
            BNT_CHECK(bn_batcher_add(b, prompts[3], lens[3], &rp, &id, &err) == BN_OK && id == 3);
            n_active = 1;
        }
    }
    for (s = 0; s < 4; s++) {
        int same_logits = 1, same_tokens = 1;
        solo = new_ctx(model, gpu, 1, BN_FTYPE_F32);
        if (!solo) break;
        BNT_CHECK(L.n[s] == 8 && bn_eval(solo, 0, prompts[s], lens[s], &err) == BN_OK);
        for (k = 0; k < 8; k++) {
            const float *l = bn_get_logits(solo, -1);
            t0 = bnt_argmax(l, V);
            same_tokens &= t0 == L.tokens[s][k];
            same_logits &= memcmp(l, L.logits[s] + (size_t)k * V, sizeof(float) * V) == 0;
            BNT_CHECK(bn_eval(solo, 0, &t0, 1, &err) == BN_OK);
        }
        BNT_CHECKF(same_tokens && same_logits, "sequence %d: batched %s differ from solo", s,
                   same_tokens ? "logits" : "tokens");
        bn_context_free(solo);
    }
    printf("    batcher on the GPU (4 sequences, one joining late, prompts in chunks of 5): equal to solo, bit for bit\n");
    /* KV operations on the GPU's memory: copy a sequence, decode the same token in both */
    bn_context_reset(ctx);
    BNT_CHECK(bn_eval(ctx, 1, prompts[0], lens[0], &err) == BN_OK);
    BNT_CHECK(bn_seq_copy(ctx, 1, 2, &err) == BN_OK && bn_seq_len(ctx, 2) == lens[0]);
    {
        int32_t tk[2] = {7, 7}, ps[2], sq[2] = {1, 2};
        bn_batch bt;
        memset(&bt, 0, sizeof bt);
        ps[0] = ps[1] = lens[0];
        bt.n_tokens = 2;
        bt.token = tk;
        bt.pos = ps;
        bt.seq = sq;
        bt.want_logits = (const int8_t *)"\1\1";
        BNT_CHECK(bn_forward(ctx, &bt, &err) == BN_OK);
        BNT_CHECK(memcmp(bn_get_logits(ctx, 0), bn_get_logits(ctx, 1), sizeof(float) * V) == 0);
        memcpy(L.logits[0], bn_get_logits(ctx, 1), sizeof(float) * V);
        bn_seq_truncate(ctx, 2, lens[0]); /* rewind and redo: the same logits */
        BNT_CHECK(bn_eval(ctx, 2, tk, 1, &err) == BN_OK);
        BNT_CHECK(memcmp(L.logits[0], bn_get_logits(ctx, -1), sizeof(float) * V) == 0);
    }
    /* the context keeps each sequence's tokens (the batcher's prompt cache reads them), and a
       sequence's saved state loads into another one: the same token decodes to the same logits */
    {
        int n_tok = 0, same = 1;
        const int32_t *got = bn_seq_tokens(ctx, 1, &n_tok);
        size_t cap = bn_seq_state_size(ctx, 1), used = 0;
        void *state = malloc(cap);
        int32_t tk = 7;
        BNT_CHECK(got && n_tok == lens[0] + 1);
        for (k = 0; got && k < lens[0]; k++) same &= got[k] == prompts[0][k];
        BNT_CHECKF(same && got && got[lens[0]] == 7, "bn_seq_tokens on the GPU's context differ from the batch's");
        BNT_CHECK(state && bn_seq_state_save(ctx, 1, state, cap, &used, &err) == BN_OK);
        BNT_CHECKF(state && bn_seq_state_load(ctx, 3, state, used, &err) == BN_OK, "%s", err.msg);
        bn_seq_truncate(ctx, 3, lens[0]);
        BNT_CHECK(bn_eval(ctx, 3, &tk, 1, &err) == BN_OK);
        BNT_CHECK(memcmp(L.logits[0], bn_get_logits(ctx, -1), sizeof(float) * V) == 0);
        free(state);
    }
done:
    bn_batcher_free(b);
    bn_context_free(ctx);
    for (s = 0; s < 4; s++) free(L.logits[s]);
    bn_model_free(model);
}

/* Every failure comes back as a status and a message, the context as it was. */
static void test_errors(void) {
    bn_backend *be = NULL;
    bn_model *model = NULL;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_error err;
    int32_t tok[3] = {5, 6, 7};
    MTLStandinFailNext("device");
    BNT_CHECK(bn_metal_backend_new(&be, &err) == BN_ERR_UNSUPPORTED && !be && strstr(err.msg, "no Metal device"));
    printf("    %s\n", err.msg);
    MTLStandinFailNext("library");
    BNT_CHECK(bn_metal_backend_new(&be, &err) == BN_ERR_UNSUPPORTED && !be && strstr(err.msg, "do not compile"));
    printf("    %s\n", err.msg);
    BNT_CHECKF(bn_model_load(&model, BNT_FIXTURES "/hf/llama-bitnet/packed", NULL, &err) == BN_OK, "%s", err.msg);
    if (!model) return;
    cp.n_ctx = 32;
    cp.backend = gpu;
    MTLStandinFailNext("newBufferWithLength");
    BNT_CHECK(bn_context_new(&ctx, model, &cp, &err) == BN_ERR_NOMEM && !ctx);
    printf("    %s\n", err.msg);
    BNT_CHECKF(bn_context_new(&ctx, model, &cp, &err) == BN_OK, "%s", err.msg);
    if (ctx) {
        BNT_CHECK(bn_eval(ctx, 0, tok, 2, &err) == BN_OK);
        MTLStandinFailNext("execute");
        BNT_CHECK(bn_eval(ctx, 0, tok + 2, 1, &err) == BN_ERR_IO && strstr(err.msg, "Timeout"));
        printf("    %s\n", err.msg);
        BNT_CHECK(bn_seq_len(ctx, 0) == 2 && bn_get_logits(ctx, -1) == NULL);
        BNT_CHECK(bn_eval(ctx, 0, tok + 2, 1, &err) == BN_OK && bn_seq_len(ctx, 0) == 3 && bn_get_logits(ctx, -1));
        /* a batch the context refuses never reaches the GPU */
        BNT_CHECK(bn_eval(ctx, 0, tok, 30, &err) == BN_ERR_CONTEXT_FULL && bn_seq_len(ctx, 0) == 3);
    }
    bn_context_free(ctx);
    bn_model_free(model);
}

/* After the backend is freed, bitnet_metal.m has released every object it made. */
static void test_all_released(void) {
    printf("    %ld dispatches; stand-in objects alive after bn_metal_backend_free: %ld\n", MTLStandinDispatches(),
           MTLStandinLiveObjects());
    BNT_CHECK(MTLStandinLiveObjects() == 0);
}

int main(void) {
    bn_error err;
    BNT_CHECKF(bn_metal_backend_new(&gpu, &err) == BN_OK, "%s", err.msg);
    if (!gpu) return bnt_finish("metal_forward");
    printf("    backend %s; kernels compiled with fast math %s\n", gpu->name, MTLStandinLastFastMath() ? "on" : "off");
    BNT_CHECK(MTLStandinLastFastMath() == 0);
    BNT_RUN(test_fixtures);
    BNT_RUN(test_other_types);
    BNT_RUN(test_batched_equals_solo);
    BNT_RUN(test_errors);
    bn_metal_backend_free(gpu);
    BNT_RUN(test_all_released);
    return bnt_finish("metal_forward");
}
