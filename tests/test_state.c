/* Sequence state: save -> load -> the next 32 greedy tokens and every
   logit equal those of the uninterrupted sequence, bit for bit (f32 and f16
   KV caches, buffers and files, another context and slot); a state from
   another model (other shapes, or the same shapes and other weights), cut
   short, with a byte flipped, of another version or KV type, or too long for
   the context is refused with its named error and leaves the sequence as it
   was. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#include <sys/stat.h>

#define TMP "build/tmp"
#define MODEL BNT_FIXTURES "/hf/tiny-mha-untied/packed"

static bn_model *model;
static const int32_t prompt[12] = {1, 17, 250, 3, 99, 640, 12, 7, 431, 5, 300, 42};

static bn_context *new_ctx(const bn_model *m, int n_seq, int n_ctx, bn_ftype kv) {
    bn_context_params cp = bn_context_default_params();
    bn_context *ctx = NULL;
    bn_error err;
    cp.n_seq = n_seq;
    cp.n_ctx = n_ctx;
    cp.n_threads = 1;
    cp.kv_type = kv;
    if (bn_context_new(&ctx, m, &cp, &err) != BN_OK) printf("  context: %s\n", err.msg);
    return ctx;
}

static int32_t argmax(const float *x, int n) {
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy from the logits of seq's last token: n tokens, their logits kept in logits[n][V]. */
static void greedy(bn_context *ctx, int seq, const float *first, int n, int32_t *out, float *logits) {
    int V = bn_model_config(model)->vocab_size, i;
    const float *l = first;
    for (i = 0; i < n; i++) {
        out[i] = argmax(l, V);
        BNT_CHECK(bn_eval(ctx, seq, &out[i], 1, NULL) == BN_OK);
        l = bn_get_logits(ctx, -1);
        memcpy(logits + (size_t)i * V, l, sizeof(float) * (size_t)V);
    }
}

/* The round trip through a buffer and a file, into another context's other slot. */
static void round_trip(bn_ftype kv) {
    int V = bn_model_config(model)->vocab_size, n = 0;
    bn_context *a = new_ctx(model, 1, 0, kv), *b = new_ctx(model, 3, 100, kv), *c = new_ctx(model, 1, 64, kv);
    float *la = (float *)malloc(sizeof(float) * 32 * (size_t)V), *lb = (float *)malloc(sizeof(float) * 32 * (size_t)V);
    float *first = (float *)malloc(sizeof(float) * (size_t)V);
    int32_t ta[32], tb[32], next = 5;
    size_t size, written = 0;
    unsigned char *buf;
    const int32_t *toks;
    bn_error err;
    if (!a || !b || !c) return;
    BNT_CHECK(bn_eval(a, 0, prompt, 12, NULL) == BN_OK);
    size = bn_seq_state_size(a, 0);
    buf = (unsigned char *)malloc(size);
    BNT_CHECK(bn_seq_state_save(a, 0, buf, size - 1, &written, &err) == BN_ERR_ARG); /* too small */
    BNT_CHECK(bn_seq_state_save(a, 0, buf, size, &written, &err) == BN_OK && written == size);
    BNT_CHECK(bn_seq_state_save_file(a, 0, TMP "/state.bin", &err) == BN_OK);
    /* the original goes on: one token, then 32 greedy ones */
    BNT_CHECK(bn_eval(a, 0, &next, 1, NULL) == BN_OK);
    memcpy(first, bn_get_logits(a, -1), sizeof(float) * (size_t)V);
    greedy(a, 0, first, 32, ta, la);
    /* b: slot 1, with something else in slot 0 first */
    BNT_CHECK(bn_eval(b, 0, prompt + 3, 5, NULL) == BN_OK);
    BNT_CHECK(bn_seq_state_load(b, 1, buf, size, &err) == BN_OK);
    toks = bn_seq_tokens(b, 1, &n);
    BNT_CHECK(n == 12 && toks && !memcmp(toks, prompt, sizeof prompt));
    BNT_CHECK(bn_seq_len(b, 0) == 5 && bn_seq_len(b, 1) == 12);
    BNT_CHECK(bn_eval(b, 1, &next, 1, NULL) == BN_OK);
    BNT_CHECK(!memcmp(bn_get_logits(b, -1), first, sizeof(float) * (size_t)V)); /* bit for bit */
    greedy(b, 1, bn_get_logits(b, -1), 32, tb, lb);
    BNT_CHECK(!memcmp(ta, tb, sizeof ta));
    BNT_CHECK(!memcmp(la, lb, sizeof(float) * 32 * (size_t)V));
    /* c: from the file */
    BNT_CHECK(bn_seq_state_load_file(c, 0, TMP "/state.bin", &err) == BN_OK);
    BNT_CHECK(bn_eval(c, 0, &next, 1, NULL) == BN_OK);
    BNT_CHECK(!memcmp(bn_get_logits(c, -1), first, sizeof(float) * (size_t)V));
    /* an empty sequence round-trips too */
    bn_seq_truncate(c, 0, 0);
    BNT_CHECK(bn_seq_state_save(c, 0, buf, size, &written, &err) == BN_OK && written == bn_seq_state_size(c, 0));
    BNT_CHECK(bn_seq_state_load(b, 1, buf, written, &err) == BN_OK && bn_seq_len(b, 1) == 0);
    free(buf);
    free(la);
    free(lb);
    free(first);
    bn_context_free(a);
    bn_context_free(b);
    bn_context_free(c);
}

static void test_round_trip_f32(void) { round_trip(BN_FTYPE_F32); }
static void test_round_trip_f16(void) { round_trip(BN_FTYPE_F16); }

/* The load fails with a message containing what; the sequence keeps its 3 tokens. */
static void refused(bn_context *ctx, const unsigned char *buf, size_t len, bn_status want, const char *what) {
    bn_error err;
    bn_status st;
    int n = 0;
    const int32_t *t;
    st = bn_seq_state_load(ctx, 0, buf, len, &err);
    BNT_CHECKF(st == want, "status %d, want %d (%s)", (int)st, (int)want, st ? err.msg : "ok");
    if (st) BNT_CHECKF(strstr(err.msg, what) != NULL, "expected '%s' in: %s", what, err.msg);
    t = bn_seq_tokens(ctx, 0, &n);
    BNT_CHECK(n == 3 && t && t[0] == 9 && t[2] == 11);
}

/* A random model of the given seed, saved and loaded (the same shapes each time). */
static bn_model *random_model(uint64_t seed) {
    bn_config tc = bn_train_default_config();
    bn_train_model *tm = NULL;
    bn_model *m = NULL;
    bn_error err;
    char dir[64];
    tc.vocab_size = 64;
    tc.hidden_size = 32;
    tc.intermediate_size = 64;
    tc.n_layers = 1;
    tc.n_heads = 2;
    tc.n_kv_heads = 1;
    tc.max_seq_len = 64;
    snprintf(dir, sizeof dir, TMP "/state-random-%d", (int)seed);
    mkdir(dir, 0755);
    if (bn_train_model_new(&tm, &tc, seed, &err) || bn_train_save_hf(tm, dir, &err) || bn_model_load(&m, dir, NULL, &err))
        printf("  random model: %s\n", err.msg);
    bn_train_model_free(tm);
    return m;
}

static void test_refusals(void) {
    bn_context *a = new_ctx(model, 1, 0, BN_FTYPE_F32), *dst = new_ctx(model, 1, 0, BN_FTYPE_F32);
    bn_context *f16 = new_ctx(model, 1, 0, BN_FTYPE_F16), *small = new_ctx(model, 1, 8, BN_FTYPE_F32);
    bn_model *shakespeare = NULL, *r1 = random_model(1), *r2 = random_model(2);
    bn_context *other = NULL, *c1 = r1 ? new_ctx(r1, 1, 0, BN_FTYPE_F32) : NULL, *c2 = r2 ? new_ctx(r2, 1, 0, BN_FTYPE_F32) : NULL;
    int32_t mine[3] = {9, 10, 11};
    size_t size, w;
    unsigned char *buf, *bad;
    bn_error err;
    if (!a || !dst || !f16 || !small) return;
    BNT_CHECK(bn_eval(a, 0, prompt, 12, NULL) == BN_OK);
    size = bn_seq_state_size(a, 0);
    buf = (unsigned char *)malloc(size);
    bad = (unsigned char *)malloc(size);
    BNT_CHECK(bn_seq_state_save(a, 0, buf, size, &w, &err) == BN_OK);
    BNT_CHECK(bn_eval(dst, 0, mine, 3, NULL) == BN_OK);
    BNT_CHECK(bn_eval(small, 0, mine, 3, NULL) == BN_OK);
    BNT_CHECK(bn_eval(f16, 0, mine, 3, NULL) == BN_OK);
    refused(dst, buf, size - 100, BN_ERR_FORMAT, "truncated");
    refused(dst, buf, 40, BN_ERR_FORMAT, "truncated");
    memcpy(bad, buf, size);
    bad[size / 2] ^= 0x10;
    refused(dst, bad, size, BN_ERR_FORMAT, "checksum mismatch");
    memcpy(bad, buf, size);
    bad[80] ^= 1; /* a token */
    refused(dst, bad, size, BN_ERR_FORMAT, "checksum mismatch");
    memcpy(bad, buf, size);
    bad[0] = 'X';
    refused(dst, bad, size, BN_ERR_FORMAT, "not a bitnet.h sequence state");
    memcpy(bad, buf, size);
    bad[8] = 2; /* the format version */
    refused(dst, bad, size, BN_ERR_UNSUPPORTED, "format version 2");
    refused(f16, buf, size, BN_ERR_ARG, "KV cache is f32");
    refused(small, buf, size, BN_ERR_CONTEXT_FULL, "12 tokens do not fit a context of 8");
    BNT_CHECK(bn_seq_state_load(dst, 5, buf, size, &err) == BN_ERR_ARG);
    /* another model, other shapes */
    BNT_CHECK(bn_model_load(&shakespeare, "models/shakespeare", NULL, NULL) == BN_OK);
    other = shakespeare ? new_ctx(shakespeare, 1, 0, BN_FTYPE_F32) : NULL;
    if (other) {
        BNT_CHECK(bn_eval(other, 0, mine, 3, NULL) == BN_OK);
        refused(other, buf, size, BN_ERR_ARG, "made for another model");
    }
    /* another model, the same shapes: the fingerprint tells them apart */
    if (c1 && c2) {
        size_t s1;
        unsigned char *b1;
        BNT_CHECK(bn_model_fingerprint(r1) != bn_model_fingerprint(r2));
        BNT_CHECK(bn_eval(c1, 0, mine, 3, NULL) == BN_OK && bn_eval(c2, 0, mine, 3, NULL) == BN_OK);
        s1 = bn_seq_state_size(c1, 0);
        b1 = (unsigned char *)malloc(s1);
        BNT_CHECK(bn_seq_state_save(c1, 0, b1, s1, &w, &err) == BN_OK);
        refused(c2, b1, s1, BN_ERR_ARG, "fingerprint");
        free(b1);
    }
    /* files: a missing one names its path */
    BNT_CHECK(bn_seq_state_load_file(dst, 0, TMP "/no-such-state.bin", &err) == BN_ERR_IO &&
              strstr(err.msg, "no-such-state.bin"));
    BNT_CHECK(bn_seq_state_save_file(a, 0, TMP "/no-such-dir/x.bin", &err) == BN_ERR_IO);
    free(buf);
    free(bad);
    bn_context_free(a);
    bn_context_free(dst);
    bn_context_free(f16);
    bn_context_free(small);
    bn_context_free(other);
    bn_context_free(c1);
    bn_context_free(c2);
    bn_model_free(shakespeare);
    bn_model_free(r1);
    bn_model_free(r2);
}

/* The same checkpoint loaded twice (another layout in memory) has the same fingerprint. */
static void test_fingerprint_stable(void) {
    bn_model *again = NULL;
    bn_model_params mp = bn_model_default_params();
    mp.layout = BN_TLAYOUT_TQ1;
    BNT_CHECK(bn_model_load(&again, MODEL, &mp, NULL) == BN_OK);
    BNT_CHECK(again && bn_model_fingerprint(again) == bn_model_fingerprint(model));
    bn_model_free(again);
}

int main(void) {
    bn_error err;
    mkdir("build", 0755);
    mkdir(TMP, 0755);
    if (bn_model_load(&model, MODEL, NULL, &err) != BN_OK) {
        printf("%s\n", err.msg);
        return 1;
    }
    BNT_RUN(test_round_trip_f32);
    BNT_RUN(test_round_trip_f16);
    BNT_RUN(test_refusals);
    BNT_RUN(test_fingerprint_stable);
    bn_model_free(model);
    return bnt_finish("test_state");
}
