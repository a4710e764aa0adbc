/* Generation on the tiny HF fixtures: the decode loop (stops, streaming,
   cancellation), beam search and the batcher, each checked against an
   independent computation (a plain greedy loop over bn_eval, a brute-force
   search, decoding each sequence alone). */
#ifndef BNT_GENERATE_PRE
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#endif
#include "harness.h"

/* tiny-mha-untied: its greedy continuation (unlike the other cases') does not
   repeat one token, so stops and streaming can be told apart */
#define CASE BNT_FIXTURES "/hf/tiny-mha-untied"

/* ---------- with a model ---------- */

static bn_model *model;
static int n_threads = 1; /* of every context the tests make */

static bn_context *new_ctx(int n_seq, int n_ctx) {
    bn_context_params cp = bn_context_default_params();
    bn_context *ctx = NULL;
    bn_error err;
    cp.n_seq = n_seq;
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    if (bn_context_new(&ctx, model, &cp, &err) != BN_OK) printf("  context: %s\n", err.msg);
    return ctx;
}

static int32_t prompt[12];     /* the fixture's input_ids */
static int32_t hf_greedy[24]; /* HF generate's greedy continuation of it (packed variant) */

static int read_i32(const bn_safetensors *st, const char *name, int32_t *out, int n) {
    const bn_safetensors_tensor *t = bn_safetensors_find(st, name);
    if (!t || t->dtype != BN_DTYPE_I32 || bn_safetensors_numel(t) != n) return 0;
    memcpy(out, t->data, sizeof(int32_t) * (size_t)n);
    return 1;
}

static int32_t argmax(const float *x, int n) {
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The reference greedy continuation: a plain loop over bn_eval and argmax. */
static void greedy_reference(const int32_t *p, int n_p, int n, int32_t *out) {
    bn_context *ctx = new_ctx(1, 0);
    int V = bn_model_config(model)->vocab_size, i;
    BNT_CHECK(bn_eval(ctx, 0, p, n_p, NULL) == BN_OK);
    for (i = 0; i < n; i++) {
        out[i] = argmax(bn_get_logits(ctx, -1), V);
        BNT_CHECK(bn_eval(ctx, 0, &out[i], 1, NULL) == BN_OK);
    }
    bn_context_free(ctx);
}

static bn_sampler *greedy_sampler(void) {
    bn_sampler_params sp = bn_sampler_default_params();
    bn_sampler *s = NULL;
    sp.temperature = 0.0f;
    bn_sampler_new(&s, &sp, bn_model_config(model)->vocab_size, NULL);
    return s;
}

static void test_generate_greedy_and_max_tokens(void) {
    int32_t ref[16], got[16];
    bn_context *ctx = new_ctx(1, 0);
    bn_sampler *s = greedy_sampler();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    greedy_reference(prompt, 12, 16, ref);
    BNT_CHECK(memcmp(ref, hf_greedy, sizeof ref) == 0); /* the plain loop agrees with HF */
    gp.max_new_tokens = 16;
    gp.ignore_eos = 1;
    BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, got, 16, &res, NULL) == BN_OK);
    BNT_CHECK(res.reason == BN_STOP_MAX_TOKENS && res.n_generated == 16 && res.n_prompt == 12);
    BNT_CHECK(memcmp(ref, got, sizeof ref) == 0);
    BNT_CHECK(bn_seq_len(ctx, 0) == 12 + 15); /* all but the last sampled token */
    bn_sampler_free(s);
    bn_context_free(ctx);
}

static void test_generate_eos(void) {
    /* declare the 5th greedy token an end token: generation stops there */
    int32_t ref[8], got[8], eos[2];
    bn_context *ctx = new_ctx(1, 0);
    bn_sampler *s = greedy_sampler();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    int k = 0, i;
    greedy_reference(prompt, 12, 8, ref);
    for (i = 0; i < 8; i++) /* the first position whose token did not occur before */
        if (i >= 4) {
            int j, seen = 0;
            for (j = 0; j < i; j++) seen |= ref[j] == ref[i];
            if (!seen) {
                k = i;
                break;
            }
        }
    eos[0] = 100000;
    eos[1] = ref[k];
    gp.eos = eos;
    gp.n_eos = 2;
    BNT_CHECK(k >= 4);
    BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, got, 8, &res, NULL) == BN_OK);
    BNT_CHECKF(res.reason == BN_STOP_EOS && res.n_generated == k + 1, "reason %d n %d k %d", res.reason,
               res.n_generated, k);
    BNT_CHECK(memcmp(ref, got, sizeof(int32_t) * (size_t)(k + 1)) == 0);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

static void test_generate_context_full(void) {
    int32_t got[32];
    bn_context *ctx = new_ctx(1, 20);
    bn_sampler *s = greedy_sampler();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    bn_error err;
    gp.ignore_eos = 1;
    BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, got, 32, &res, NULL) == BN_OK);
    /* 8 more positions: 8 tokens go in, a 9th is sampled from the last logits */
    BNT_CHECKF(res.reason == BN_STOP_CONTEXT_FULL && res.n_generated == 9, "reason %d n %d", res.reason,
               res.n_generated);
    BNT_CHECK(bn_seq_len(ctx, 0) == 20);
    /* a prompt that does not fit is an error, not a crash */
    bn_context_reset(ctx);
    {
        int32_t longp[24];
        int i;
        for (i = 0; i < 24; i++) longp[i] = prompt[i % 12];
        BNT_CHECK(bn_generate(ctx, 0, s, longp, 24, &gp, got, 32, &res, &err) == BN_ERR_CONTEXT_FULL);
    }
    bn_sampler_free(s);
    bn_context_free(ctx);
}

/* ---------- the one-way output path: ids -> finished text ---------- */

/* A tokenizer for the fixture's vocabulary, written here: token t reads "<t>",
   except the tokens given bytes ("<0xC3>" with byte_fallback: one byte of a
   UTF-8 character each, so a character can be split across tokens).
   eos >= 0 becomes tokenizer_config.json's eos_token. */
static bn_tokenizer *fixture_tokenizer(const int32_t *byte_tok, const int *byte_val, int n_bytes, int32_t eos) {
    int V = bn_model_config(model)->vocab_size, t, k;
    size_t cap = (size_t)V * 24 + 512, n = 0;
    char *json = (char *)malloc(cap), cfg[64];
    bn_tokenizer *tok = NULL;
    bn_error err;
    n += (size_t)sprintf(json + n, "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"merges\": [], \"vocab\": {");
    for (t = 0; t < V; t++) {
        char name[16];
        sprintf(name, "<%d>", t);
        for (k = 0; k < n_bytes; k++)
            if (byte_tok[k] == t) sprintf(name, "<0x%02X>", byte_val[k]);
        n += (size_t)sprintf(json + n, "%s\"%s\": %d", t ? ", " : "", name, t);
    }
    n += (size_t)sprintf(json + n, "}}, \"decoder\": {\"type\": \"Sequence\", \"decoders\": "
                                   "[{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}}");
    if (eos >= 0) sprintf(cfg, "{\"eos_token\": \"<%d>\"}", (int)eos);
    BNT_CHECKF(bn_tokenizer_load_memory(&tok, json, n, eos >= 0 ? cfg : NULL, eos >= 0 ? strlen(cfg) : 0, "fixture",
                                        &err) == BN_OK, "%s", err.msg);
    free(json);
    return tok;
}

/* What the callback saw: every call's token, text length and reason, and the text. */
typedef struct collect {
    char text[1024];
    int n_calls, cancel_at;
    int32_t tokens[64];
    size_t lens[64];
    bn_stop_reason reasons[64];
    int ends[64];  /* end_token of each call */
    int logits_ok; /* every sampled token's logits were given, the closing call's not */
} collect;

static int on_token(void *user, const bn_token_event *ev) {
    collect *c = (collect *)user;
    if (c->n_calls == 0) c->logits_ok = 1;
    if (c->n_calls < 64) {
        c->tokens[c->n_calls] = ev->token;
        c->lens[c->n_calls] = ev->len;
        c->reasons[c->n_calls] = ev->reason;
        c->ends[c->n_calls] = ev->end_token;
    }
    c->logits_ok &= ev->token >= 0 ? ev->logits != NULL && ev->n_vocab == bn_model_config(model)->vocab_size &&
                                         ev->index == c->n_calls
                                   : ev->logits == NULL;
    c->n_calls++;
    BNT_CHECK(strlen(ev->text) == ev->len);
    strncat(c->text, ev->text, ev->len);
    return c->cancel_at > 0 && c->n_calls == c->cancel_at;
}

/* The greedy continuation's first 12 tokens, and whether those at a and b occur nowhere else in the first 8. */
static int greedy_with_unique(int32_t *ref, int a, int b) {
    int i, ok = 1;
    greedy_reference(prompt, 12, 12, ref);
    ok = ref[a] != ref[b];
    for (i = 0; i < 8; i++)
        if (i != a && i != b) ok &= ref[i] != ref[a] && ref[i] != ref[b];
    return ok;
}

/* The greedy continuation's first 12 tokens in ref, and a tokenizer in which
   tokens 2 and 3 of it (found nowhere else in the first 8) carry the two bytes of e-acute. */
static bn_tokenizer *split_char_tokenizer(int32_t *ref) {
    static const int vals[2] = {0xC3, 0xA9};
    int32_t bytes[2];
    BNT_CHECK(greedy_with_unique(ref, 2, 3));
    bytes[0] = ref[2];
    bytes[1] = ref[3];
    return fixture_tokenizer(bytes, vals, 2, -1);
}

/* Generate greedily with tokenizer tok (stop strings and limits from gp), collecting the callbacks. */
static bn_generate_result generate_text(bn_tokenizer *tok, bn_generate_params gp, collect *c) {
    bn_context *ctx = new_ctx(1, 0);
    bn_sampler *s = greedy_sampler();
    bn_generate_result res;
    int32_t got[32];
    memset(c, 0, sizeof *c);
    gp.tokenizer = tok;
    gp.on_token = on_token;
    gp.user = c;
    BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, got, 32, &res, NULL) == BN_OK);
    bn_sampler_free(s);
    bn_context_free(ctx);
    return res;
}

static void test_text_stop_string_and_split_character(void) {
    /* tokens 2 and 3 carry the two bytes of e-acute; the stop string spans the end of
       token 5's text and the start of token 6's */
    int32_t ref[12];
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    bn_tokenizer *tok = split_char_tokenizer(ref);
    collect c;
    char stop[64], want[512];
    const char *stops[1];
    sprintf(stop, "%d><%d", (int)ref[5], (int)ref[6]);
    stops[0] = stop;
    gp.ignore_eos = 1;
    gp.max_new_tokens = 12;
    gp.stop = stops;
    gp.n_stop = 1;
    res = generate_text(tok, gp, &c);
    BNT_CHECKF(res.reason == BN_STOP_STRING && res.n_generated == 7, "reason %d n %d", res.reason, res.n_generated);
    /* everything before the stop string: "<r0><r1>é<r4><" */
    sprintf(want, "<%d><%d>\xC3\xA9<%d><", (int)ref[0], (int)ref[1], (int)ref[4]);
    BNT_CHECKF(strcmp(c.text, want) == 0, "got '%s' want '%s'", c.text, want);
    BNT_CHECK(c.n_calls == 8 && c.tokens[7] == -1 && c.lens[7] == 0); /* the closing call shows nothing more */
    BNT_CHECK(c.reasons[7] == BN_STOP_STRING && c.reasons[6] == BN_STOP_NONE);
    BNT_CHECK(c.lens[2] == 0 && c.lens[3] == 2); /* the character comes out whole, with token 3 */
    BNT_CHECK(c.lens[5] == 1);                   /* "<r5>" minus the "<r5>" part that may begin the stop string */
    BNT_CHECK(c.logits_ok);
    bn_tokenizer_free(tok);
}

static void test_text_end_token_from_tokenizer(void) {
    /* the model's config names no end token among these; the tokenizer's eos_token does */
    int32_t ref[12], none = -1;
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    bn_tokenizer *tok;
    collect c;
    char want[256];
    int i;
    BNT_CHECK(greedy_with_unique(ref, 4, 5));
    for (i = 0; i < bn_model_config(model)->n_eos; i++) BNT_CHECK(bn_model_config(model)->eos_token_ids[i] != ref[4]);
    tok = fixture_tokenizer(&none, &i, 0, ref[4]);
    BNT_CHECK(tok && bn_tokenizer_eos_id(tok) == ref[4]);
    res = generate_text(tok, gp, &c);
    BNT_CHECKF(res.reason == BN_STOP_EOS && res.n_generated == 5, "reason %d n %d", res.reason, res.n_generated);
    sprintf(want, "<%d><%d><%d><%d>", (int)ref[0], (int)ref[1], (int)ref[2], (int)ref[3]);
    BNT_CHECKF(strcmp(c.text, want) == 0, "got '%s'", c.text); /* the end token has no text */
    BNT_CHECK(c.n_calls == 6 && c.tokens[4] == ref[4] && c.lens[4] == 0 && c.reasons[5] == BN_STOP_EOS);
    BNT_CHECK(c.ends[4] == 1 && !c.ends[0] && !c.ends[3] && !c.ends[5]); /* the event says which token ended it */
    /* an explicit end-token list replaces the default set: the tokenizer's is not added */
    gp.eos = &none;
    gp.n_eos = 1;
    gp.max_new_tokens = 7;
    res = generate_text(tok, gp, &c);
    BNT_CHECK(res.reason == BN_STOP_MAX_TOKENS && res.n_generated == 7);
    /* ignore_eos: generation goes past it, and its text shows */
    gp.eos = NULL;
    gp.ignore_eos = 1;
    res = generate_text(tok, gp, &c);
    BNT_CHECK(res.reason == BN_STOP_MAX_TOKENS && strstr(c.text, want) && c.lens[4] > 0 && !c.ends[4]);
    bn_tokenizer_free(tok);
}

static void test_text_flush_rules(void) {
    int32_t ref[12];
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    bn_tokenizer *tok = split_char_tokenizer(ref);
    collect c;
    char want[256], stop[64];
    const char *stops[1];
    gp.ignore_eos = 1;
    /* max_new_tokens ends generation after the first byte of the character: the
       closing call hands out the incomplete character as U+FFFD */
    gp.max_new_tokens = 3;
    res = generate_text(tok, gp, &c);
    sprintf(want, "<%d><%d>\xEF\xBF\xBD", (int)ref[0], (int)ref[1]);
    BNT_CHECK(res.reason == BN_STOP_MAX_TOKENS && c.n_calls == 4);
    BNT_CHECKF(strcmp(c.text, want) == 0 && c.lens[2] == 0 && c.lens[3] == 3, "got '%s'", c.text);
    BNT_CHECK(c.reasons[3] == BN_STOP_MAX_TOKENS);
    /* a tail held as the possible start of a stop string that never completes
       comes out in the closing call */
    sprintf(stop, "<%d>never", (int)ref[4]);
    stops[0] = stop;
    gp.stop = stops;
    gp.n_stop = 1;
    gp.max_new_tokens = 5;
    res = generate_text(tok, gp, &c);
    sprintf(want, "<%d><%d>\xC3\xA9<%d>", (int)ref[0], (int)ref[1], (int)ref[4]);
    BNT_CHECK(res.reason == BN_STOP_MAX_TOKENS && c.n_calls == 6);
    BNT_CHECKF(strcmp(c.text, want) == 0, "got '%s' want '%s'", c.text, want);
    BNT_CHECK(c.lens[4] == 0 && c.lens[5] == strlen(stop) - 5); /* held with token 4, out at the close */
    /* cancelled by the callback: what was held comes out too */
    gp.max_new_tokens = 12;
    memset(&c, 0, sizeof c);
    {
        bn_context *ctx = new_ctx(1, 0);
        bn_sampler *s = greedy_sampler();
        c.cancel_at = 5;
        gp.tokenizer = tok;
        gp.on_token = on_token;
        gp.user = &c;
        BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, NULL, 0, &res, NULL) == BN_OK);
        BNT_CHECK(res.reason == BN_STOP_CANCELLED && c.n_calls == 6 && c.reasons[5] == BN_STOP_CANCELLED);
        BNT_CHECKF(strcmp(c.text, want) == 0, "got '%s' want '%s'", c.text, want);
        bn_sampler_free(s);
        bn_context_free(ctx);
    }
    bn_tokenizer_free(tok);
}

static void test_generate_cancel_then_continue(void) {
    /* cancel after 4 tokens, then continue in the same context: the tokens must
       be those of an uninterrupted run */
    int32_t ref[10], got[10], more[6];
    bn_context *ctx = new_ctx(1, 0);
    bn_sampler *s = greedy_sampler();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result res;
    collect c;
    greedy_reference(prompt, 12, 10, ref);
    memset(&c, 0, sizeof c);
    c.cancel_at = 4;
    gp.ignore_eos = 1;
    gp.on_token = on_token;
    gp.user = &c;
    BNT_CHECK(bn_generate(ctx, 0, s, prompt, 12, &gp, got, 10, &res, NULL) == BN_OK);
    BNT_CHECK(res.reason == BN_STOP_CANCELLED && res.n_generated == 4);
    BNT_CHECK(c.n_calls == 5 && c.tokens[4] == -1 && c.text[0] == 0); /* the closing call; no tokenizer, no text */
    BNT_CHECK(memcmp(got, ref, 4 * sizeof(int32_t)) == 0);
    gp.on_token = NULL;
    gp.max_new_tokens = 6;
    BNT_CHECK(bn_generate(ctx, 0, s, &got[3], 1, &gp, more, 6, &res, NULL) == BN_OK);
    BNT_CHECK(res.n_generated == 6 && memcmp(more, ref + 4, 6 * sizeof(int32_t)) == 0);
    bn_sampler_free(s);
    bn_context_free(ctx);
}

/* ---------- scoring a window ---------- */

static void test_score_window(void) {
    /* bn_score against a plain loop: evaluate one token at a time, log-softmax in double */
    int V = bn_model_config(model)->vocab_size, i, t, bad = 0;
    bn_context *ctx = new_ctx(2, 0), *solo = new_ctx(1, 0);
    bn_context_params cp = bn_context_default_params();
    double got[11], worst = 0.0;
    bn_error err;
    BNT_CHECKF(bn_score(ctx, 1, prompt, 12, got, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(bn_seq_len(ctx, 1) == 12 && bn_seq_len(ctx, 0) == 0);
    for (i = 0; i < 11; i++) {
        const float *l;
        double max = -1e30, sum = 0.0, want;
        BNT_CHECK(bn_eval(solo, 0, &prompt[i], 1, NULL) == BN_OK);
        l = bn_get_logits(solo, -1);
        for (t = 0; t < V; t++) max = l[t] > max ? l[t] : max;
        for (t = 0; t < V; t++) sum += exp((double)l[t] - max);
        want = (double)l[prompt[i + 1]] - max - log(sum);
        if (fabs(want - got[i]) > worst) worst = fabs(want - got[i]);
        bad += !(got[i] < 0.0);
    }
    BNT_CHECKF(worst < 1e-4 && bad == 0, "worst %g", worst);
    /* batches smaller than the window: the same scores */
    bn_context_free(ctx);
    cp.n_batch = 5;
    cp.n_threads = n_threads;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, NULL) == BN_OK);
    {
        double small[11];
        BNT_CHECK(bn_score(ctx, 0, prompt, 12, small, NULL) == BN_OK);
        for (i = 0; i < 11; i++) bad += fabs(small[i] - got[i]) > 1e-5;
        BNT_CHECK(bad == 0);
    }
    BNT_CHECK(bn_score(ctx, 3, prompt, 12, got, &err) == BN_ERR_ARG); /* no such sequence */
    bn_context_free(ctx);
    bn_context_free(solo);
}

/* ---------- beam search vs brute force ---------- */

/* log p(next = t) over the allowed set only (the rest is banned by the bias). */
static double logp_over(const float *logits, const int32_t *allowed, int n_allowed, int32_t t) {
    double max = -1e30, sum = 0.0;
    int i;
    for (i = 0; i < n_allowed; i++)
        if (logits[allowed[i]] > max) max = logits[allowed[i]];
    for (i = 0; i < n_allowed; i++) sum += exp((double)logits[allowed[i]] - max);
    return (double)logits[t] - max - log(sum);
}

typedef struct scored {
    int32_t tok[4];
    int n;
    double sum, score;
} scored;

static int scored_cmp(const void *a, const void *b) {
    const scored *x = (const scored *)a, *y = (const scored *)b;
    return (x->score < y->score) - (x->score > y->score);
}

/* Every continuation of length <= depth over the allowed tokens, scored
   independently by evaluating its whole prefix. A sequence stops at eos. */
static int brute_force(const int32_t *allowed, int n_allowed, int depth, int32_t eos, float lp, scored *out) {
    bn_context *ctx = new_ctx(1, 0);
    int n_out = 0, total = 1, d, code;
    for (d = 0; d < depth; d++) total *= n_allowed;
    for (code = 0; code < total; code++) {
        scored sc;
        int c = code, len;
        memset(&sc, 0, sizeof sc);
        for (d = 0; d < depth; d++) {
            sc.tok[d] = allowed[c % n_allowed];
            c /= n_allowed;
        }
        for (len = 1; len < depth && sc.tok[len - 1] != eos; len++) {
        }
        if (len < depth) { /* ends early at eos: count it only once (its tail digits all 0) */
            int k, tail_zero = 1;
            for (k = len; k < depth; k++) tail_zero &= sc.tok[k] == allowed[0];
            if (!tail_zero) continue;
        }
        sc.n = len;
        bn_seq_truncate(ctx, 0, 0);
        BNT_CHECK(bn_eval(ctx, 0, prompt, 12, NULL) == BN_OK);
        for (d = 0; d < len; d++) {
            sc.sum += logp_over(bn_get_logits(ctx, -1), allowed, n_allowed, sc.tok[d]);
            if (d + 1 < len) BNT_CHECK(bn_eval(ctx, 0, &sc.tok[d], 1, NULL) == BN_OK);
        }
        sc.score = sc.sum / pow((double)len, (double)lp);
        out[n_out++] = sc;
    }
    qsort(out, (size_t)n_out, sizeof *out, scored_cmp);
    bn_context_free(ctx);
    return n_out;
}

static bn_logit_bias *ban_all_but(const int32_t *allowed, int n_allowed, int *n_bias) {
    int V = bn_model_config(model)->vocab_size, t, i, n = 0;
    bn_logit_bias *b = (bn_logit_bias *)malloc(sizeof *b * (size_t)V);
    for (t = 0; t < V; t++) {
        int ok = 0;
        for (i = 0; i < n_allowed; i++) ok |= allowed[i] == t;
        if (ok) continue;
        b[n].token = t;
        b[n].bias = -INFINITY;
        n++;
    }
    *n_bias = n;
    return b;
}

static void check_beams_match(const bn_beam_result *r, const scored *bf, int n) {
    int i, d;
    BNT_CHECKF(r->n == n, "%d hypotheses, want %d", r->n, n);
    for (i = 0; i < n && i < r->n; i++) {
        int same = r->hyps[i].n_tokens == bf[i].n;
        for (d = 0; same && d < bf[i].n; d++) same = r->hyps[i].tokens[d] == bf[i].tok[d];
        BNT_CHECKF(same, "rank %d differs", i);
        BNT_CHECKF(fabs(r->hyps[i].score - bf[i].score) < 1e-4, "rank %d: score %g vs %g", i, r->hyps[i].score,
                   bf[i].score);
    }
}

static void test_beam_exhaustive_matches_brute_force(void) {
    /* 4 allowed tokens, 3 steps, 16 beams: the search keeps every prefix until
       the last step, where it must pick exactly the 16 best of all 64 */
    const int32_t allowed[4] = {10, 300, 301, 700};
    scored bf[64];
    bn_beam_params bp = bn_beam_default_params();
    bn_beam_result r;
    bn_context *ctx = new_ctx(16, 0);
    int n_bias, n_bf;
    bn_logit_bias *bias = ban_all_but(allowed, 4, &n_bias);
    bn_error err;
    int32_t no_eos = -5;
    n_bf = brute_force(allowed, 4, 3, no_eos, 1.0f, bf);
    BNT_CHECK(n_bf == 64);
    bp.n_beams = 16;
    bp.max_new_tokens = 3;
    bp.eos = &no_eos;
    bp.n_eos = 1;
    bp.logit_bias = bias;
    bp.n_logit_bias = n_bias;
    BNT_CHECKF(bn_beam_search(ctx, 0, prompt, 12, &bp, &r, &err) == BN_OK, "%s", err.msg);
    check_beams_match(&r, bf, 16);
    bn_beam_result_free(&r);
    free(bias);
    bn_context_free(ctx);
}

static void test_beam_with_eos_and_length_penalty(void) {
    /* 3 allowed tokens, one of them EOS, 3 steps, 16 beams: every hypothesis
       survives (1 + 2 + 4 ending early, 8 of full length) and must come out
       ranked by sum / length^0.7 exactly as the brute force ranks them */
    const int32_t allowed[3] = {2, 55, 640};
    scored bf[27];
    bn_beam_params bp = bn_beam_default_params();
    bn_beam_result r;
    bn_context *ctx = new_ctx(16, 0);
    int n_bias, n_bf;
    bn_logit_bias *bias = ban_all_but(allowed, 3, &n_bias);
    int32_t eos = 2;
    n_bf = brute_force(allowed, 3, 3, eos, 0.7f, bf);
    BNT_CHECK(n_bf == 15);
    bp.n_beams = 16;
    bp.max_new_tokens = 3;
    bp.length_penalty = 0.7f;
    bp.eos = &eos;
    bp.n_eos = 1;
    bp.logit_bias = bias;
    bp.n_logit_bias = n_bias;
    BNT_CHECK(bn_beam_search(ctx, 0, prompt, 12, &bp, &r, NULL) == BN_OK);
    check_beams_match(&r, bf, 15);
    bn_beam_result_free(&r);
    free(bias);
    bn_context_free(ctx);
}

static void test_beam_narrow_scores_consistent(void) {
    /* 2 beams over the full vocabulary: not exhaustive, but every returned
       hypothesis must carry the true log-probability of its tokens, recomputed
       here from a plain evaluation of the sequence */
    bn_beam_params bp = bn_beam_default_params();
    bn_beam_result r;
    bn_context *ctx = new_ctx(2, 0), *solo = new_ctx(1, 0);
    int V = bn_model_config(model)->vocab_size, i, d;
    int32_t none = -5;
    bp.n_beams = 2;
    bp.max_new_tokens = 4;
    bp.eos = &none;
    bp.n_eos = 1;
    BNT_CHECK(bn_beam_search(ctx, 0, prompt, 12, &bp, &r, NULL) == BN_OK);
    BNT_CHECK(r.n == 2 && r.hyps[0].score >= r.hyps[1].score);
    for (i = 0; i < r.n; i++) {
        double sum = 0.0, max, lse = 0.0;
        const float *l;
        int t;
        bn_seq_truncate(solo, 0, 0);
        BNT_CHECK(bn_eval(solo, 0, prompt, 12, NULL) == BN_OK);
        for (d = 0; d < r.hyps[i].n_tokens; d++) {
            l = bn_get_logits(solo, -1);
            max = l[argmax(l, V)];
            lse = 0.0;
            for (t = 0; t < V; t++) lse += exp((double)l[t] - max);
            sum += (double)l[r.hyps[i].tokens[d]] - max - log(lse);
            BNT_CHECK(bn_eval(solo, 0, &r.hyps[i].tokens[d], 1, NULL) == BN_OK);
        }
        BNT_CHECKF(fabs(sum - r.hyps[i].sum_logprob) < 1e-3, "hyp %d: %g vs %g", i, sum, r.hyps[i].sum_logprob);
    }
    bn_beam_result_free(&r);
    bn_context_free(ctx);
    bn_context_free(solo);
}

/* ---------- batching ---------- */

#define NB_SEQ 4
#define NB_GEN 8

typedef struct seq_log {
    int32_t tokens[NB_SEQ][NB_GEN];
    float *logits[NB_SEQ]; /* NB_GEN x V */
    int n[NB_SEQ], done[NB_SEQ], ids[NB_SEQ], closed[NB_SEQ], counts_ok[NB_SEQ];
    bn_stop_reason reason[NB_SEQ];
} seq_log;

static int slot_of(seq_log *L, int id) {
    int i;
    for (i = 0; i < NB_SEQ; i++)
        if (L->ids[i] == id) return i;
    return -1;
}

static int log_token(void *user, const bn_token_event *ev) {
    seq_log *L = (seq_log *)user;
    int s = slot_of(L, ev->id), V = bn_model_config(model)->vocab_size;
    if (s < 0) return 1;
    if (ev->token < 0) { /* the closing call comes once, before on_done */
        L->closed[s]++;
        return L->done[s] ? 1 : 0;
    }
    if (L->n[s] >= NB_GEN || ev->index != L->n[s]) return 1;
    L->tokens[s][L->n[s]] = ev->token;
    memcpy(L->logits[s] + (size_t)L->n[s] * (size_t)V, ev->logits, sizeof(float) * (size_t)V);
    L->n[s]++;
    return 0;
}

static void log_done(void *user, int id, const bn_generate_result *res) {
    seq_log *L = (seq_log *)user;
    int s = slot_of(L, id);
    if (s >= 0) {
        L->done[s] = 1;
        L->reason[s] = res->reason;
        L->counts_ok[s] = res->n_generated == L->n[s] && res->n_prompt > 0 && L->closed[s] == 1;
    }
}

static void batched_equals_solo(void) {
    /* 4 prompts of different lengths; the 4th joins after 3 steps; prompts are
       fed in chunks of 5 tokens between decode steps */
    static const int lens[NB_SEQ] = {12, 7, 3, 10};
    int32_t prompts[NB_SEQ][12];
    int V = bn_model_config(model)->vocab_size, s, k, steps = 0, n_active = 1;
    seq_log L;
    bn_context *ctx = new_ctx(NB_SEQ, 0);
    bn_batcher *b = NULL;
    bn_batcher_params bpar = bn_batcher_default_params();
    bn_request_params rp = bn_request_default_params();
    bn_error err;
    memset(&L, 0, sizeof L);
    for (s = 0; s < NB_SEQ; s++) {
        for (k = 0; k < lens[s]; k++) prompts[s][k] = (prompt[(k + 5 * s) % 12] + 37 * s) % V;
        L.logits[s] = (float *)malloc(sizeof(float) * (size_t)V * NB_GEN);
        L.ids[s] = -1;
    }
    bpar.prefill_chunk = 5;
    BNT_CHECK(bn_batcher_new(&b, ctx, &bpar, &err) == BN_OK);
    rp.max_new_tokens = NB_GEN;
    rp.ignore_eos = 1;
    rp.on_token = log_token;
    rp.on_done = log_done;
    rp.user = &L;
    for (s = 0; s < 3; s++) BNT_CHECK(bn_batcher_add(b, prompts[s], lens[s], &rp, &L.ids[s], &err) == BN_OK);
    while (n_active > 0 && steps < 100) {
        BNT_CHECKF(bn_batcher_step(b, &n_active, &err) == BN_OK, "%s", err.msg);
        if (++steps == 3) BNT_CHECK(bn_batcher_add(b, prompts[3], lens[3], &rp, &L.ids[3], &err) == BN_OK);
        if (steps == 3) n_active = 1;
    }
    for (s = 0; s < NB_SEQ; s++) {
        /* the same sequence alone: plain bn_eval, greedy */
        bn_context *solo = new_ctx(1, 0);
        int32_t t;
        float worst = 0.0f;
        int same = 1, i;
        BNT_CHECK(L.done[s] && L.reason[s] == BN_STOP_MAX_TOKENS && L.n[s] == NB_GEN && L.counts_ok[s]);
        BNT_CHECK(bn_eval(solo, 0, prompts[s], lens[s], NULL) == BN_OK);
        for (k = 0; k < NB_GEN; k++) {
            const float *l = bn_get_logits(solo, -1);
            for (i = 0; i < V; i++) {
                float d = fabsf(l[i] - L.logits[s][(size_t)k * (size_t)V + (size_t)i]);
                float rel = d / (fabsf(l[i]) > 1e-3f ? fabsf(l[i]) : 1e-3f);
                if (rel > worst) worst = rel;
            }
            t = argmax(l, V);
            same &= t == L.tokens[s][k];
            BNT_CHECK(bn_eval(solo, 0, &t, 1, NULL) == BN_OK);
        }
        BNT_CHECKF(same, "sequence %d: batched tokens differ from solo", s);
        BNT_CHECKF(worst <= 1e-5f, "sequence %d: logits differ by %g relative", s, worst);
        bn_context_free(solo);
        free(L.logits[s]);
    }
    bn_batcher_free(b);
    bn_context_free(ctx);
}

static void test_batched_equals_solo(void) {
    batched_equals_solo();
}

/* The same with 2 threads, and on the llama-architecture fixture. */
static void test_batched_equals_solo_threads_and_llama(void) {
    bn_model *saved = model;
    bn_error err;
    n_threads = 2;
    batched_equals_solo();
    n_threads = 1;
    if (bn_model_load(&model, BNT_FIXTURES "/hf/llama-bitnet/packed", NULL, &err) != BN_OK) {
        BNT_CHECKF(0, "%s", err.msg);
        model = saved;
        return;
    }
    batched_equals_solo();
    bn_model_free(model);
    model = saved;
}

/* One request's callbacks in test_batcher_text. */
typedef struct req_text {
    collect c;
    int done, closed_first;
    bn_generate_result res;
} req_text;

static int req_on_token(void *user, const bn_token_event *ev) {
    return on_token(&((req_text *)user)->c, ev);
}

static void req_on_done(void *user, int id, const bn_generate_result *res) {
    req_text *r = (req_text *)user;
    BN_UNUSED(id);
    r->done++;
    r->res = *res;
    r->closed_first = r->c.n_calls > 0 && r->c.tokens[(r->c.n_calls - 1) % 64] == -1;
}

static void test_batcher_text(void) {
    /* two requests with the tokenizer and stop strings of their own: each gets
       the text, stop reason and counts that bn_generate gives the same prompt */
    int32_t ref[12];
    int k, n = 1, steps = 0, ids[2];
    bn_tokenizer *tok = split_char_tokenizer(ref);
    bn_context *ctx = new_ctx(2, 0);
    bn_batcher *b = NULL;
    bn_request_params rp = bn_request_default_params();
    bn_generate_params gp = bn_generate_default_params();
    bn_generate_result want_res[2];
    req_text rt[2];
    collect want[2];
    char stop_a[64], stop_b[64];
    const char *sa[1], *sb[1];
    bn_error err;
    sprintf(stop_a, "%d><%d", (int)ref[5], (int)ref[6]);
    sprintf(stop_b, "\xC3\xA9<never");
    sa[0] = stop_a;
    sb[0] = stop_b;
    gp.ignore_eos = 1;
    gp.max_new_tokens = 10;
    gp.stop = sa;
    gp.n_stop = 1;
    want_res[0] = generate_text(tok, gp, &want[0]);
    gp.stop = sb;
    want_res[1] = generate_text(tok, gp, &want[1]);
    BNT_CHECK(want_res[0].reason == BN_STOP_STRING && want_res[1].reason == BN_STOP_MAX_TOKENS);
    memset(rt, 0, sizeof rt);
    BNT_CHECK(bn_batcher_new(&b, ctx, NULL, &err) == BN_OK);
    rp.ignore_eos = 1;
    rp.max_new_tokens = 10;
    rp.tokenizer = tok;
    rp.on_token = req_on_token;
    rp.on_done = req_on_done;
    for (k = 0; k < 2; k++) {
        rp.stop = k ? sb : sa;
        rp.n_stop = 1;
        rp.user = &rt[k];
        BNT_CHECK(bn_batcher_add(b, prompt, 12, &rp, &ids[k], &err) == BN_OK);
    }
    memset(stop_a, 'x', sizeof stop_a - 1); /* the batcher holds copies of the stop strings */
    memset(stop_b, 'x', sizeof stop_b - 1);
    while (n > 0 && steps++ < 100) BNT_CHECK(bn_batcher_step(b, &n, &err) == BN_OK);
    for (k = 0; k < 2; k++) {
        BNT_CHECKF(strcmp(rt[k].c.text, want[k].text) == 0, "request %d: '%s' want '%s'", k, rt[k].c.text,
                   want[k].text);
        BNT_CHECK(rt[k].done == 1 && rt[k].closed_first && rt[k].c.logits_ok);
        BNT_CHECK(rt[k].res.reason == want_res[k].reason && rt[k].res.n_generated == want_res[k].n_generated);
        BNT_CHECK(rt[k].res.n_prompt == 12 && rt[k].c.n_calls == want[k].n_calls);
        BNT_CHECK(memcmp(rt[k].c.lens, want[k].lens, sizeof(size_t) * (size_t)want[k].n_calls) == 0);
    }
    bn_batcher_free(b);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
}

static void test_batcher_full_and_cancel(void) {
    bn_context *ctx = new_ctx(2, 0);
    bn_batcher *b = NULL;
    bn_request_params rp = bn_request_default_params();
    bn_error err;
    int id0, id1, id2, n;
    BNT_CHECK(bn_batcher_new(&b, ctx, NULL, &err) == BN_OK);
    rp.max_new_tokens = 3;
    BNT_CHECK(bn_batcher_add(b, prompt, 12, &rp, &id0, &err) == BN_OK);
    BNT_CHECK(bn_batcher_add(b, prompt, 6, &rp, &id1, &err) == BN_OK);
    BNT_CHECK(bn_batcher_add(b, prompt, 6, &rp, &id2, &err) == BN_ERR_CONTEXT_FULL && id2 == -1);
    BNT_CHECK(strstr(err.msg, "slots are busy") != NULL);
    BNT_CHECK(bn_batcher_step(b, &n, &err) == BN_OK && n == 2);
    BNT_CHECK(bn_batcher_cancel(b, id1) == 1 && bn_batcher_n_active(b) == 1);
    BNT_CHECK(bn_batcher_cancel(b, id1) == 0);
    BNT_CHECK(bn_batcher_add(b, prompt, 6, &rp, &id2, &err) == BN_OK && id2 != id1); /* the slot is free again */
    while (n > 0) BNT_CHECK(bn_batcher_step(b, &n, &err) == BN_OK);
    BNT_CHECK(bn_batcher_n_active(b) == 0);
    bn_batcher_free(b);
    bn_context_free(ctx);
}

/* ---------- the prompt cache ---------- */

#define PC_GEN 8

typedef struct one_run {
    int32_t tokens[PC_GEN];
    float *logits; /* PC_GEN x V */
    int n, done;
    bn_generate_result res;
} one_run;

static int one_token(void *user, const bn_token_event *ev) {
    one_run *o = (one_run *)user;
    int V = bn_model_config(model)->vocab_size;
    if (ev->token < 0 || o->n >= PC_GEN) return 0;
    o->tokens[o->n] = ev->token;
    memcpy(o->logits + (size_t)o->n * (size_t)V, ev->logits, sizeof(float) * (size_t)V);
    o->n++;
    return 0;
}

static void one_done(void *user, int id, const bn_generate_result *res) {
    one_run *o = (one_run *)user;
    BN_UNUSED(id);
    o->done++;
    o->res = *res;
}

/* One greedy request of PC_GEN tokens through the batcher, alone. */
static void run_one(bn_batcher *b, const int32_t *p, int n_p, one_run *o) {
    bn_request_params rp = bn_request_default_params();
    bn_error err;
    int id, n = 1, steps = 0;
    float *keep = o->logits;
    memset(o, 0, sizeof *o);
    o->logits = keep;
    rp.max_new_tokens = PC_GEN;
    rp.ignore_eos = 1;
    rp.on_token = one_token;
    rp.on_done = one_done;
    rp.user = o;
    BNT_CHECKF(bn_batcher_add(b, p, n_p, &rp, &id, &err) == BN_OK, "%s", err.msg);
    while (n > 0 && steps++ < 200) BNT_CHECKF(bn_batcher_step(b, &n, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(o->done == 1 && o->n == PC_GEN);
}

/* A request whose prompt starts with what a finished request left in a slot
   computes only the rest, and samples what the whole prompt computed afresh
   samples: the same tokens and the same logits, bit for bit. */
static void test_prompt_cache(void) {
    int V = bn_model_config(model)->vocab_size, i, k;
    int32_t chat[40], other[12];
    int n_chat;
    one_run a, b2, fresh, again, o2, o3;
    bn_context *ctx = new_ctx(2, 0), *ctx_nc = new_ctx(2, 0);
    bn_batcher *b = NULL, *nc = NULL;
    bn_batcher_params bp = bn_batcher_default_params(), np = bn_batcher_default_params();
    bn_error err;
    one_run *runs[6];
    runs[0] = &a, runs[1] = &b2, runs[2] = &fresh, runs[3] = &again, runs[4] = &o2, runs[5] = &o3;
    for (k = 0; k < 6; k++) runs[k]->logits = (float *)malloc(sizeof(float) * (size_t)V * PC_GEN);
    bp.prefill_chunk = 5; /* the first request's prompt goes in 3 chunks */
    np.prompt_cache = 0;
    BNT_CHECK(bn_batcher_default_params().prompt_cache == 1);
    BNT_CHECK(bn_batcher_new(&b, ctx, &bp, &err) == BN_OK);
    BNT_CHECK(bn_batcher_new(&nc, ctx_nc, &np, &err) == BN_OK);

    /* a first turn, then a second one that repeats it, its reply and more */
    run_one(b, prompt, 12, &a);
    BNT_CHECK(a.res.n_cached == 0 && a.res.n_prompt == 12);
    memcpy(chat, prompt, sizeof(int32_t) * 12);
    memcpy(chat + 12, a.tokens, sizeof(int32_t) * PC_GEN);
    n_chat = 12 + PC_GEN;
    for (i = 0; i < 5; i++) chat[n_chat++] = (prompt[i] * 7 + 3) % V;
    run_one(b, chat, n_chat, &b2);
    /* the first turn's prompt and all its sampled tokens but the last (never fed) */
    BNT_CHECKF(b2.res.n_cached == 12 + PC_GEN - 1, "n_cached %d", b2.res.n_cached);
    run_one(nc, chat, n_chat, &fresh);
    BNT_CHECK(fresh.res.n_cached == 0);
    BNT_CHECK(memcmp(b2.tokens, fresh.tokens, sizeof b2.tokens) == 0);
    BNT_CHECKF(memcmp(b2.logits, fresh.logits, sizeof(float) * (size_t)V * PC_GEN) == 0,
               "cached and uncached logits differ");

    /* a prompt the cache holds whole: its last token still runs for its logits */
    run_one(b, chat, 12, &again);
    BNT_CHECKF(again.res.n_cached == 11, "n_cached %d", again.res.n_cached);
    BNT_CHECK(memcmp(again.tokens, a.tokens, sizeof a.tokens) == 0);
    BNT_CHECK(memcmp(again.logits, a.logits, sizeof(float) * (size_t)V * PC_GEN) == 0);

    /* two slots: an unrelated prompt takes the slot used least recently, and a
       continuation of each goes back to its own slot */
    for (i = 0; i < 12; i++) other[i] = (prompt[11 - i] + 101) % V;
    run_one(b, other, 12, &o2);
    BNT_CHECK(o2.res.n_cached == 0);
    run_one(b, chat, n_chat, &b2);
    BNT_CHECKF(b2.res.n_cached == 12 + PC_GEN - 1, "n_cached %d", b2.res.n_cached); /* what `again` left */
    BNT_CHECK(memcmp(b2.tokens, fresh.tokens, sizeof b2.tokens) == 0);
    run_one(b, other, 12, &o3);
    BNT_CHECK(o3.res.n_cached == 11 && memcmp(o3.tokens, o2.tokens, sizeof o2.tokens) == 0);

    /* off: nothing is reused */
    run_one(nc, chat, n_chat, &again);
    BNT_CHECK(again.res.n_cached == 0 && memcmp(again.tokens, fresh.tokens, sizeof fresh.tokens) == 0);
    bn_batcher_free(b);
    bn_batcher_free(nc);
    bn_context_free(ctx);
    bn_context_free(ctx_nc);
    for (k = 0; k < 6; k++) free(runs[k]->logits);
}

int main(void) {
    bn_error err;
    bn_safetensors *ref = NULL;
    if (bn_safetensors_load(&ref, CASE "/reference.safetensors", &err) != BN_OK ||
        !read_i32(ref, "input_ids", prompt, 12) || !read_i32(ref, "packed.greedy", hf_greedy, 24)) {
        printf("cannot read %s/reference.safetensors\n", CASE);
        return 1;
    }
    bn_safetensors_free(ref);
    if (bn_model_load(&model, CASE "/packed", NULL, &err) != BN_OK) {
        printf("cannot load %s/packed: %s\n", CASE, err.msg);
        return 1;
    }
    BNT_RUN(test_generate_greedy_and_max_tokens);
    BNT_RUN(test_generate_eos);
    BNT_RUN(test_generate_context_full);
    BNT_RUN(test_text_stop_string_and_split_character);
    BNT_RUN(test_text_end_token_from_tokenizer);
    BNT_RUN(test_text_flush_rules);
    BNT_RUN(test_generate_cancel_then_continue);
    BNT_RUN(test_score_window);
    BNT_RUN(test_beam_exhaustive_matches_brute_force);
    BNT_RUN(test_beam_with_eos_and_length_penalty);
    BNT_RUN(test_beam_narrow_scores_consistent);
    BNT_RUN(test_batched_equals_solo);
    BNT_RUN(test_batched_equals_solo_threads_and_llama);
    BNT_RUN(test_batcher_full_and_cancel);
    BNT_RUN(test_batcher_text);
    BNT_RUN(test_prompt_cache);
    bn_model_free(model);
    return bnt_finish("test_generate");
}
