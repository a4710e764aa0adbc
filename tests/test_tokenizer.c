/* The tokenizer against HuggingFace `tokenizers`: the reference ids, decoded
   text and whole-corpus SHA-256 in tests/fixtures/tokenizers/reference.json,
   plus round trips, invalid UTF-8, streaming, chat formats and the errors that
   unsupported tokenizer.json components must give. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#define TOKDIR BNT_FIXTURES "/tokenizers"

/* ---- a small SHA-256 (FIPS 180-4), for the corpus checksum only ---- */
typedef struct sha256 {
    uint32_t h[8];
    unsigned char buf[64];
    uint64_t total;
    size_t n;
} sha256;

static uint32_t ror32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha256_block(sha256 *s, const unsigned char *p) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64], a, b, c, d, e, f, g, h;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
    for (i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_init(sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->total = 0;
    s->n = 0;
}

static void sha256_add(sha256 *s, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    s->total += len;
    while (len--) {
        s->buf[s->n++] = *p++;
        if (s->n == 64) { sha256_block(s, s->buf); s->n = 0; }
    }
}

static void sha256_hex(sha256 *s, char out[65]) {
    uint64_t bits = s->total * 8;
    unsigned char pad = 0x80, len[8];
    int i;
    sha256_add(s, &pad, 1);
    pad = 0;
    while (s->n != 56) sha256_add(s, &pad, 1);
    for (i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_add(s, len, 8);
    for (i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* ---- fixtures ---- */
static bn_json_doc g_ref;
static bn_tokenizer *g_llama3, *g_spm;

static int ids_equal(const int32_t *got, size_t n, const bn_json *want) {
    size_t i;
    if (!want || want->type != BN_JSON_ARRAY || (size_t)want->len != n) return 0;
    for (i = 0; i < n; i++)
        if ((double)got[i] != want->child[i].num) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    size_t i;
    printf("    %s:", label);
    for (i = 0; i < n && i < 40; i++) printf(" %d", (int)ids[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

static void check_cases(bn_tokenizer *tok, const char *name) {
    const bn_json *cases = bn_json_get(bn_json_get(g_ref.root, name), "cases");
    int i;
    BNT_CHECK(tok != NULL && cases && cases->len >= 32);
    if (!tok || !cases) return;
    for (i = 0; i < cases->len; i++) {
        const bn_json *c = &cases->child[i], *text = bn_json_get(c, "text"), *dec = bn_json_get(c, "decoded");
        int32_t *ids = NULL;
        size_t n = 0, dlen = 0;
        char *out = NULL;
        bn_error err;
        /* HF always cuts added tokens out of the text: that is BN_TOK_PARSE_SPECIAL */
        BNT_CHECK(bn_tokenizer_encode(tok, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK);
        BNT_CHECKF(ids_equal(ids, n, bn_json_get(c, "ids")), "%s case %d ids differ", name, i);
        if (!ids_equal(ids, n, bn_json_get(c, "ids"))) print_ids("got", ids, n);
        BNT_CHECK(bn_tokenizer_decode(tok, ids, n, 0, &out, &dlen, &err) == BN_OK);
        BNT_CHECKF(out && dlen == (size_t)dec->len && memcmp(out, dec->str, dlen) == 0, "%s case %d decoded '%s'",
                   name, i, out ? out : "(null)");
        bn_free(out);
        bn_free(ids);
        BNT_CHECK(bn_tokenizer_encode(tok, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL | BN_TOK_ADD_SPECIAL,
                                      &ids, &n, &err) == BN_OK);
        BNT_CHECKF(ids_equal(ids, n, bn_json_get(c, "ids_with_special")), "%s case %d ids_with_special differ",
                   name, i);
        bn_free(ids);
    }
}

static void test_llama3_reference_cases(void) { check_cases(g_llama3, "llama3"); }
static void test_spm32k_reference_cases(void) { check_cases(g_spm, "spm32k"); }

static void check_corpus(bn_tokenizer *tok, const char *name) {
    const bn_json *ref = bn_json_get(bn_json_get(g_ref.root, name), "tinyshakespeare");
    char *text = NULL, hex[65];
    size_t len = 0, n = 0, i;
    int32_t *ids = NULL;
    bn_error err;
    sha256 sh;
    BNT_CHECK(tok && ref);
    if (!tok || !ref) return;
    BNT_CHECK(bn_read_file("data/tinyshakespeare.txt", &text, &len, &err) == BN_OK);
    if (!text) return;
    BNT_CHECK(bn_tokenizer_encode(tok, text, len, 0, &ids, &n, &err) == BN_OK);
    BNT_CHECKF((double)n == bn_json_number(ref, "n_tokens", -1), "%s: %lu tokens", name, (unsigned long)n);
    sha256_init(&sh);
    for (i = 0; i < n; i++) {
        unsigned char le[4];
        le[0] = (unsigned char)ids[i]; le[1] = (unsigned char)(ids[i] >> 8);
        le[2] = (unsigned char)(ids[i] >> 16); le[3] = (unsigned char)(ids[i] >> 24);
        sha256_add(&sh, le, 4);
    }
    sha256_hex(&sh, hex);
    BNT_CHECKF(strcmp(hex, bn_json_string(ref, "sha256_of_ids_le_u32", "")) == 0, "%s: sha256 %s", name, hex);
    BNT_CHECK(n >= 64 && ids_equal(ids, 64, bn_json_get(ref, "first_64")));
    BNT_CHECK(n >= 64 && ids_equal(ids + n - 64, 64, bn_json_get(ref, "last_64")));
    bn_free(ids);
    bn_free(text);
}

static void test_llama3_tinyshakespeare(void) { check_corpus(g_llama3, "llama3"); }
static void test_spm32k_tinyshakespeare(void) { check_corpus(g_spm, "spm32k"); }


/* ---- the extra HF reference: more edge strings, and the GPT-2 regex (ByteLevel use_regex) ---- */
static bn_json_doc g_extra;

/* The llama3 tokenizer.json with its pre_tokenizer replaced (as the extra reference was made). */
static bn_tokenizer *load_llama3_variant(const char *pre_tokenizer) {
    char *json = NULL, *patched, *a, *b;
    size_t len = 0, n;
    bn_tokenizer *tok = NULL;
    bn_error err;
    if (bn_read_file(TOKDIR "/llama3/tokenizer.json", &json, &len, &err)) return NULL;
    a = strstr(json, "\"pre_tokenizer\": {");
    b = strstr(json, "\"post_processor\"");
    if (!a || !b) { bn_free(json); return NULL; }
    patched = (char *)malloc(len + strlen(pre_tokenizer) + 64);
    n = (size_t)(a - json);
    memcpy(patched, json, n);
    n += (size_t)sprintf(patched + n, "\"pre_tokenizer\": %s,\n  ", pre_tokenizer);
    memcpy(patched + n, b, len - (size_t)(b - json));
    n += len - (size_t)(b - json);
    if (bn_tokenizer_load_memory(&tok, patched, n, NULL, 0, "llama3 variant", &err)) printf("  %s\n", err.msg);
    free(patched);
    bn_free(json);
    return tok;
}

static void check_extra(bn_tokenizer *tok, const char *key) {
    const bn_json *cases = bn_json_get(g_extra.root, "cases");
    int i;
    BNT_CHECK(tok && cases && cases->len >= 30);
    if (!tok || !cases) return;
    for (i = 0; i < cases->len; i++) {
        const bn_json *c = &cases->child[i], *text = bn_json_get(c, "text");
        int32_t *ids = NULL;
        size_t n = 0;
        bn_error err;
        BNT_CHECK(bn_tokenizer_encode(tok, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK);
        BNT_CHECKF(ids_equal(ids, n, bn_json_get(c, key)), "%s: case %d (%s)", key, i, text->str);
        if (!ids_equal(ids, n, bn_json_get(c, key))) print_ids("got", ids, n);
        bn_free(ids);
    }
}

static void test_llama3_extra_cases(void) { check_extra(g_llama3, "llama3"); }

/* The same vocab behind other pre-tokenizers: the GPT-2 regex (ByteLevel use_regex, with and
   without add_prefix_space) and Digits (one by one, or in runs) before it. */
static void test_pretokenizer_variants(void) {
    const bn_json *vars = bn_json_get(g_extra.root, "pre_tokenizer_variants");
    int i;
    BNT_CHECK(vars && vars->len >= 4);
    for (i = 0; vars && i < vars->len; i++) {
        bn_tokenizer *t = load_llama3_variant(vars->child[i].str);
        check_extra(t, vars->child[i].key);
        bn_tokenizer_free(t);
    }
}

static void test_decode_reference(void) {
    const bn_json *cases = bn_json_get(g_extra.root, "decode_cases");
    int i;
    BNT_CHECK(cases && cases->len >= 10);
    for (i = 0; cases && i < cases->len; i++) {
        const bn_json *c = &cases->child[i], *ids = bn_json_get(c, "ids");
        bn_tokenizer *tok = bn_json_streq(bn_json_get(c, "tokenizer"), "llama3") ? g_llama3 : g_spm;
        int32_t v[16];
        int k, skip;
        for (k = 0; k < ids->len && k < 16; k++) v[k] = (int32_t)ids->child[k].num;
        for (skip = 0; skip < 2; skip++) {
            const bn_json *want = bn_json_get(c, skip ? "decoded_skip_special" : "decoded");
            char *out = NULL;
            size_t len = 0;
            bn_error err;
            BNT_CHECK(bn_tokenizer_decode(tok, v, (size_t)ids->len, skip ? BN_TOK_SKIP_SPECIAL : 0, &out, &len, &err) == BN_OK);
            BNT_CHECKF(out && len == (size_t)want->len && memcmp(out, want->str, len) == 0, "decode case %d%s: '%s'", i,
                       skip ? " (skip special)" : "", out ? out : "");
            bn_free(out);
        }
    }
}

/* ---- properties ---- */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

/* A random code point: mostly ASCII and whitespace, else from any plane (no surrogates). */
static uint32_t random_code_point(void) {
    static const uint32_t specials[] = {' ', ' ', '\n', '\r', '\t', '\'', 0xa0, 0x3000, 0x2028, 0x85, 0x17f, 0x200d};
    uint32_t r = rnd() % 10, cp;
    if (r < 3) return 0x20 + rnd() % 95;
    if (r < 5) return specials[rnd() % (sizeof specials / sizeof specials[0])];
    if (r < 7) return 0x80 + rnd() % 0x780;
    for (;;) {
        cp = rnd() % 0x110000;
        if (cp < 0xd800 || cp > 0xdfff) return cp;
    }
}

static void test_roundtrip_random_utf8(void) {
    int iter, bad = 0;
    for (iter = 0; iter < 400; iter++) {
        char s[512], *out = NULL;
        size_t n = 0, len = (size_t)(rnd() % 60), i, n_ids = 0, olen = 0;
        int32_t *ids = NULL;
        bn_error err;
        for (i = 0; i < len; i++) {
            uint32_t cp = random_code_point();
            if (cp == 0) cp = 1;
            n += bn__utf8_put(s + n, cp);
        }
        if (bn_tokenizer_encode(g_llama3, s, n, 0, &ids, &n_ids, &err) != BN_OK ||
            bn_tokenizer_decode(g_llama3, ids, n_ids, 0, &out, &olen, &err) != BN_OK || olen != n || memcmp(out, s, n) != 0) {
            if (bad++ < 3) printf("    round trip failed for a string of %lu bytes\n", (unsigned long)n);
        }
        bn_free(ids);
        bn_free(out);
    }
    BNT_CHECKF(bad == 0, "%d of 400 random strings did not round-trip", bad);
}

static void test_invalid_utf8(void) {
    static const char *bad[] = {"\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok\xf4\x90\x80\x80", "\xe2\x82", "\x80x"};
    static const size_t at[] = {0, 1, 0, 0, 2, 0, 0};
    int i;
    for (i = 0; i < 7; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        bn_error err;
        char want[32];
        bn_status st = bn_tokenizer_encode(g_llama3, bad[i], strlen(bad[i]), 0, &ids, &n, &err);
        BNT_CHECKF(st == BN_ERR_ARG, "case %d: status %d", i, (int)st);
        sprintf(want, "byte %lu", (unsigned long)at[i]);
        BNT_CHECKF(st != BN_ERR_ARG || strstr(err.msg, want), "case %d: %s", i, err.msg);
        bn_free(ids);
    }
    { /* with BN_TOK_REPLACE_INVALID: each maximal invalid subpart becomes U+FFFD (Python's errors="replace") */
        const char *in = "a\xff" "b\xe2\x82" "c\xed\xa0\x80" "d";
        const char *same = "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d";
        int32_t *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        bn_error err;
        BNT_CHECK(bn_tokenizer_encode(g_llama3, in, strlen(in), BN_TOK_REPLACE_INVALID, &x, &nx, &err) == BN_OK);
        BNT_CHECK(bn_tokenizer_encode(g_llama3, same, strlen(same), 0, &y, &ny, &err) == BN_OK);
        BNT_CHECK(nx == ny && nx > 0 && memcmp(x, y, nx * sizeof *x) == 0);
        bn_free(x);
        bn_free(y);
    }
}

static void test_special_tokens_only_when_asked(void) {
    const char *s = "<|begin_of_text|>hi<|eot_id|>";
    int32_t *ids = NULL;
    size_t n = 0, i, len = 0;
    char *out = NULL;
    bn_error err;
    int any = 0;
    BNT_CHECK(bn_tokenizer_encode(g_llama3, s, strlen(s), 0, &ids, &n, &err) == BN_OK);
    for (i = 0; i < n; i++) any |= ids[i] >= 128000;
    BNT_CHECK(!any && n > 4);
    BNT_CHECK(bn_tokenizer_decode(g_llama3, ids, n, 0, &out, &len, &err) == BN_OK && strcmp(out, s) == 0);
    bn_free(out);
    bn_free(ids);
    BNT_CHECK(bn_tokenizer_encode(g_llama3, s, strlen(s), BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK);
    BNT_CHECK(n == 3 && ids[0] == 128000 && ids[2] == 128009);
    bn_free(ids);
    BNT_CHECK(bn_tokenizer_token_to_id(g_llama3, "<|eot_id|>", 10) == 128009);
    BNT_CHECK(bn_tokenizer_is_special(g_llama3, 128009) && !bn_tokenizer_is_special(g_llama3, 9906));
    BNT_CHECK(bn_tokenizer_bos_id(g_llama3) == 128000 && bn_tokenizer_eos_id(g_llama3) == 128001);
    BNT_CHECK(bn_tokenizer_bos_id(g_spm) == 1 && bn_tokenizer_eos_id(g_spm) == 2);
    BNT_CHECK(bn_tokenizer_vocab_size(g_llama3) == 128256 && bn_tokenizer_vocab_size(g_spm) == 32000);
}

/* Stream every reference case id by id: the pieces are valid UTF-8 and add up to decode(ids). */
static void check_stream(bn_tokenizer *tok, const char *name) {
    const bn_json *cases = bn_json_get(bn_json_get(g_ref.root, name), "cases");
    int i;
    for (i = 0; cases && i < cases->len; i++) {
        const bn_json *ids = bn_json_get(&cases->child[i], "ids"), *dec = bn_json_get(&cases->child[i], "decoded");
        bn_utf8_stream ts;
        bn__buf all;
        const char *piece;
        size_t len;
        int k, valid = 1;
        bn_error err;
        memset(&all, 0, sizeof all);
        bn__buf_add(&all, "", 0);
        bn_utf8_stream_init(&ts, tok, 0);
        for (k = 0; k < ids->len; k++) {
            BNT_CHECK(bn_utf8_stream_push(&ts, (int32_t)ids->child[k].num, &piece, &len, &err) == BN_OK);
            valid &= bn__is_valid_utf8(piece, len);
            bn__buf_add(&all, piece, len);
        }
        BNT_CHECK(bn_utf8_stream_flush(&ts, &piece, &len, &err) == BN_OK);
        bn__buf_add(&all, piece, len);
        bn_utf8_stream_free(&ts);
        BNT_CHECKF(valid, "%s case %d: a piece was not valid UTF-8", name, i);
        BNT_CHECKF(all.len == (size_t)dec->len && memcmp(all.p, dec->str, all.len) == 0, "%s case %d: streamed '%s'",
                   name, i, all.p);
        free(all.p);
    }
}

static void test_stream_decode(void) {
    /* "𝔘" (F0 9D 94 98) is three llama3 tokens: nothing comes out until the last */
    bn_utf8_stream ts;
    const char *piece;
    size_t len, n = 0;
    int32_t *ids = NULL;
    bn_error err;
    BNT_CHECK(bn_tokenizer_encode(g_llama3, "\xf0\x9d\x94\x98", 4, 0, &ids, &n, &err) == BN_OK && n == 3);
    if (n != 3) return;
    bn_utf8_stream_init(&ts, g_llama3, 0);
    BNT_CHECK(bn_utf8_stream_push(&ts, ids[0], &piece, &len, &err) == BN_OK && len == 0);
    BNT_CHECK(bn_utf8_stream_push(&ts, ids[1], &piece, &len, &err) == BN_OK && len == 0);
    BNT_CHECK(bn_utf8_stream_push(&ts, ids[2], &piece, &len, &err) == BN_OK && len == 4 &&
              memcmp(piece, "\xf0\x9d\x94\x98", 4) == 0);
    bn_free(ids);
    BNT_CHECK(bn_utf8_stream_push(&ts, 9468, &piece, &len, &err) == BN_OK && len == 0);
    BNT_CHECK(bn_utf8_stream_flush(&ts, &piece, &len, &err) == BN_OK && len == 3 &&
              memcmp(piece, "\xef\xbf\xbd", 3) == 0);
    bn_utf8_stream_free(&ts);
    check_stream(g_llama3, "llama3");
    check_stream(g_spm, "spm32k");
}

static void test_chat_templates(void) {
    bn_chat_message m[3];
    char *out = NULL, *cfg, *json = NULL;
    size_t len = 0, jlen = 0;
    bn_error err;
    bn_tokenizer *bitnet = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    /* microsoft/bitnet-b1.58-2B-4T's chat_template */
    static const char bitnet_cfg[] =
        "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|eot_id|>\", \"chat_template\": \"{% set loop_messages = "
        "messages %}{% for message in loop_messages %}{% set content = message['role'] | capitalize + ': '+ "
        "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
        "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}\"}";
    m[0].role = "system"; m[0].content = " Be brief.\n";
    m[1].role = "user"; m[1].content = "Hi!";
    m[2].role = "assistant"; m[2].content = "Hello.";
    /* the fixture's Llama 3 template always ends with the assistant header */
    BNT_CHECK(bn_tokenizer_chat_template(g_llama3) == BN_CHAT_LLAMA3);
    BNT_CHECK(bn_chat_format(g_llama3, BN_CHAT_AUTO, m, 2, 0, &out, &len, &err) == BN_OK);
    BNT_CHECKF(out && strcmp(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0, "'%s'", out);
    BNT_CHECK(bn_tokenizer_encode(g_llama3, out, len, BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK);
    BNT_CHECK(n > 10 && ids[0] == 128000 && ids[1] == 128006 && ids[n - 1] == 271 && ids[n - 2] == 128007);
    bn_free(ids);
    bn_free(out);
    /* the BitNet 2B4T template, recognized from its config */
    BNT_CHECK(bn_read_file(TOKDIR "/llama3/tokenizer.json", &json, &jlen, &err) == BN_OK);
    cfg = (char *)bitnet_cfg;
    BNT_CHECK(json && bn_tokenizer_load_memory(&bitnet, json, jlen, cfg, strlen(cfg), "bitnet", &err) == BN_OK);
    bn_free(json);
    if (!bitnet) return;
    BNT_CHECK(bn_tokenizer_chat_template(bitnet) == BN_CHAT_BITNET && bn_tokenizer_eos_id(bitnet) == 128009);
    BNT_CHECK(bn_chat_format(bitnet, BN_CHAT_AUTO, m, 3, 1, &out, &len, &err) == BN_OK);
    BNT_CHECKF(out && strcmp(out, "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi!<|eot_id|>Assistant: Hello.<|eot_id|>"
                              "Assistant: ") == 0, "'%s'", out);
    bn_free(out);
    BNT_CHECK(bn_chat_format(bitnet, BN_CHAT_AUTO, m + 1, 1, 0, &out, &len, &err) == BN_OK);
    BNT_CHECK(out && strcmp(out, "<|begin_of_text|>User: Hi!<|eot_id|>") == 0);
    bn_free(out);
    /* explicit override */
    BNT_CHECK(bn_chat_format(bitnet, BN_CHAT_LLAMA3, m + 1, 1, 1, &out, &len, &err) == BN_OK);
    BNT_CHECK(out && strcmp(out, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                                 "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0);
    bn_free(out);
    bn_tokenizer_free(bitnet);
    /* no recognized template: an error unless one is chosen */
    BNT_CHECK(bn_tokenizer_chat_template(g_spm) == BN_CHAT_UNKNOWN);
    BNT_CHECK(bn_chat_format(g_spm, BN_CHAT_AUTO, m, 1, 1, &out, &len, &err) == BN_ERR_UNSUPPORTED);
    BNT_CHECK(bn_chat_template_from_name("bitnet") == BN_CHAT_BITNET && bn_chat_template_from_name("x") == BN_CHAT_UNKNOWN);
}

/* ---- small hand-made tokenizers: the BPE rules, and the errors for what we do not support ---- */
static bn_status load_json(const char *json, bn_tokenizer **tok, bn_error *err) {
    return bn_tokenizer_load_memory(tok, json, strlen(json), NULL, 0, "test.json", err);
}

static int encode_is(bn_tokenizer *tok, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    bn_error err;
    int ok = bn_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err) == BN_OK && n == n_want &&
             (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) print_ids(text, ids, n);
    bn_free(ids);
    return ok;
}

static void test_bpe_rules(void) {
    bn_tokenizer *t = NULL;
    bn_error err;
    /* merge order: the lower rank wins, whatever its position */
    static const int32_t r1[] = {0, 4}, r2[] = {3, 2}, r3[] = {4}, r4[] = {3, 4, 0, 3}, r5[] = {3, 4, 0, 0, 3};
    BNT_CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4},"
                        " \"merges\": [\"b c\", \"a b\"]}}", &t, &err) == BN_OK);
    if (t) BNT_CHECK(encode_is(t, "abc", r1, 2));
    bn_tokenizer_free(t);
    BNT_CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4},"
                        " \"merges\": [[\"a\", \"b\"], [\"b\", \"c\"]]}}", &t, &err) == BN_OK);
    if (t) BNT_CHECK(encode_is(t, "abc", r2, 2));
    bn_tokenizer_free(t);
    /* ignore_merges: a word in the vocab is taken whole */
    BNT_CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2,"
                        " \"ab\": 3, \"abc\": 4}, \"merges\": [\"a b\"]}}", &t, &err) == BN_OK);
    if (t) {
        static const int32_t w[] = {3, 2, 2}; /* "abcc" is not in the vocab: merges as usual */
        BNT_CHECK(encode_is(t, "abc", r3, 1) && encode_is(t, "abcc", w, 3));
    }
    bn_tokenizer_free(t);
    /* byte_fallback, then unk (fused when fuse_unk) */
    BNT_CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true, \"fuse_unk\": true,"
                        " \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"<0x63>\": 4}, \"merges\": [\"a b\"]}}",
                        &t, &err) == BN_OK);
    if (t) BNT_CHECK(encode_is(t, "abcxyab", r4, 4));
    bn_tokenizer_free(t);
    BNT_CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
                        " \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"<0x63>\": 4}, \"merges\": [\"a b\"]}}",
                        &t, &err) == BN_OK);
    if (t) BNT_CHECK(encode_is(t, "abcxyab", r5, 5));
    bn_tokenizer_free(t);
}

static void expect_error(const char *json, bn_status want, const char *needle) {
    bn_tokenizer *t = NULL;
    bn_error err;
    bn_status st = load_json(json, &t, &err);
    BNT_CHECKF(st == want && t == NULL, "status %d for %.80s", (int)st, json);
    if (st != BN_OK) BNT_CHECKF(strstr(err.msg, needle) != NULL, "'%s' does not name '%s'", err.msg, needle);
    bn_tokenizer_free(t);
}

#define MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

static void test_component_errors(void) {
    expect_error("{" MODEL ", \"normalizer\": {\"type\": \"NFKC\"}}", BN_ERR_UNSUPPORTED, "NFKC");
    expect_error("{" MODEL ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Lowercase\"}]}}",
                 BN_ERR_UNSUPPORTED, "Lowercase");
    expect_error("{" MODEL ", \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" +\"}, \"content\": \" \"}}",
                 BN_ERR_UNSUPPORTED, "Regex");
    expect_error("{" MODEL ", \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", BN_ERR_UNSUPPORTED, "Whitespace");
    expect_error("{" MODEL ", \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"x\", \"prepend_scheme\": \"sometimes\"}}",
                 BN_ERR_UNSUPPORTED, "sometimes");
    expect_error("{" MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": "
                 "\"Isolated\", \"invert\": false}}", BN_ERR_UNSUPPORTED, "\\w+");
    expect_error("{" MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"'s|'t|'re|'ve|'m|'ll|'d| "
                 "?\\\\p{L}+| ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Removed\"}}",
                 BN_ERR_UNSUPPORTED, "Removed");
    expect_error("{" MODEL ", \"decoder\": {\"type\": \"WordPiece\"}}", BN_ERR_UNSUPPORTED, "WordPiece");
    expect_error("{" MODEL ", \"post_processor\": {\"type\": \"RobertaProcessing\"}}", BN_ERR_UNSUPPORTED, "RobertaProcessing");
    expect_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", BN_ERR_UNSUPPORTED, "Unigram");
    expect_error("{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}",
                 BN_ERR_UNSUPPORTED, "dropout");
    expect_error("{" MODEL ", \"truncation\": {\"max_length\": 8}}", BN_ERR_UNSUPPORTED, "truncation");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", BN_ERR_FORMAT, "ab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b c\"]}}", BN_ERR_FORMAT,
                 "merges[0]");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", BN_ERR_FORMAT, "vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", BN_ERR_FORMAT, "merges");
    expect_error("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                 BN_ERR_FORMAT, "<unk>");
    expect_error("{" MODEL ", \"added_tokens\": [{\"id\": 5}]}", BN_ERR_FORMAT, "added_tokens[0]");
    expect_error("{" MODEL ", \"decoder\": {\"type\": \"Strip\", \"content\": \"ab\", \"start\": 1, \"stop\": 0}}",
                 BN_ERR_FORMAT, "Strip");
    expect_error("{\"model\": ", BN_ERR_FORMAT, "test.json");
    expect_error("{}", BN_ERR_MISSING, "model");
}

/* A small hand-made tokenizer.json (in extra_reference.json) with added-token options
   (normalized, lstrip, rstrip, single_word), byte_fallback + unk and the SentencePiece decoders,
   against HF's ids and decoded text. */
static void test_small_tokenizer_reference(void) {
    const bn_json *small = bn_json_get(g_extra.root, "small"), *json = bn_json_get(small, "tokenizer_json");
    const bn_json *cases = bn_json_get(small, "cases");
    bn_tokenizer *t = NULL;
    bn_error err;
    int i;
    BNT_CHECK(json && cases && cases->len >= 10);
    if (!json || !cases) return;
    BNT_CHECK(bn_tokenizer_load_memory(&t, json->str, (size_t)json->len, NULL, 0, "small", &err) == BN_OK);
    for (i = 0; t && i < cases->len; i++) {
        const bn_json *c = &cases->child[i], *text = bn_json_get(c, "text"), *dec = bn_json_get(c, "decoded");
        int32_t *ids = NULL;
        size_t n = 0, len = 0;
        char *out = NULL;
        BNT_CHECK(bn_tokenizer_encode(t, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK);
        BNT_CHECKF(ids_equal(ids, n, bn_json_get(c, "ids")), "case %d '%s'", i, text->str);
        if (!ids_equal(ids, n, bn_json_get(c, "ids"))) print_ids("got", ids, n);
        BNT_CHECK(bn_tokenizer_decode(t, ids, n, 0, &out, &len, &err) == BN_OK);
        BNT_CHECKF(out && len == (size_t)dec->len && memcmp(out, dec->str, len) == 0, "case %d decoded '%s'", i, out);
        bn_free(out);
        bn_free(ids);
        BNT_CHECK(bn_tokenizer_encode(t, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL | BN_TOK_ADD_SPECIAL, &ids, &n,
                                      &err) == BN_OK);
        BNT_CHECKF(ids_equal(ids, n, bn_json_get(c, "ids_with_special")), "case %d '%s' with special", i, text->str);
        bn_free(ids);
    }
    bn_tokenizer_free(t);
}

static void test_unicode_classes(void) {
    BNT_CHECK(bn__uc_class('a') == BN_UC_LETTER && bn__uc_class(0xe9) == BN_UC_LETTER && bn__uc_class(0x4e2d) == BN_UC_LETTER);
    BNT_CHECK(bn__uc_class(0x17f) == BN_UC_LETTER && bn__uc_class(0x1d518) == BN_UC_LETTER);
    BNT_CHECK(bn__uc_class('7') == BN_UC_NUMBER && bn__uc_class(0x663) == BN_UC_NUMBER && bn__uc_class(0x216b) == BN_UC_NUMBER &&
              bn__uc_class(0xbd) == BN_UC_NUMBER);
    BNT_CHECK(bn__uc_class(' ') == BN_UC_SPACE && bn__uc_class('\t') == BN_UC_SPACE && bn__uc_class(0x85) == BN_UC_SPACE &&
              bn__uc_class(0xa0) == BN_UC_SPACE && bn__uc_class(0x3000) == BN_UC_SPACE && bn__uc_class(0x2028) == BN_UC_SPACE);
    BNT_CHECK(bn__uc_class('!') == BN_UC_OTHER && bn__uc_class(0x1c) == BN_UC_OTHER && bn__uc_class(0x180e) == BN_UC_OTHER &&
              bn__uc_class(0x200b) == BN_UC_OTHER && bn__uc_class(0x1f600) == BN_UC_OTHER && bn__uc_class(0x10ffff) == BN_UC_OTHER);
}


/* Damaged tokenizer.json files: every single-byte change and every truncation of a small
   file with each kind of component either loads (and then encodes and decodes) or fails
   cleanly; ASan/UBSan watch for the rest. */
static void test_damaged_files(void) {
    const bn_json *json = bn_json_get(bn_json_get(g_extra.root, "small"), "tokenizer_json");
    const char *good = json ? json->str : "{}";
    static const char repl[] = {'"', '}', ']', '9', '\\', '\xff'};
    size_t n = strlen(good), i, r;
    int loaded = 0, failed = 0;
    char *buf = (char *)malloc(n + 1);
    bn_tokenizer *t = NULL;
    bn_error err;
    for (i = 0; i <= n; i++) {
        for (r = 0; r <= sizeof repl; r++) {
            size_t len = n;
            memcpy(buf, good, n);
            if (r == sizeof repl) len = i; /* truncated */
            else if (i < n) buf[i] = repl[r];
            else continue;
            t = NULL;
            if (bn_tokenizer_load_memory(&t, buf, len, NULL, 0, "damaged", &err) == BN_OK) {
                int32_t *ids = NULL, bad_ids[3] = {0, 3, 6};
                size_t k = 0, tl = 0;
                char *text = NULL;
                loaded++;
                if (bn_tokenizer_encode(t, "ab ba <s>zz", 11, BN_TOK_PARSE_SPECIAL | BN_TOK_ADD_SPECIAL, &ids, &k, &err) == BN_OK) {
                    bn_tokenizer_decode(t, ids, k, 0, &text, &tl, &err);
                    bn_free(text);
                }
                bn_free(ids);
                text = NULL;
                bn_tokenizer_decode(t, bad_ids, 3, 0, &text, &tl, &err);
                bn_free(text);
                bn_tokenizer_free(t);
            } else {
                failed++;
                BNT_CHECK(t == NULL && err.msg[0] != 0);
            }
        }
    }
    BNT_CHECK(loaded > 0 && failed > 0);
    free(buf);
}


/* The newer SentencePiece layout: no normalizer, a Metaspace pre-tokenizer and decoder
   (spm32k patched as extra_reference.json's "metaspace" says). */
static void test_metaspace_reference(void) {
    const bn_json *vars = bn_json_get(bn_json_get(g_extra.root, "metaspace"), "variants");
    char *raw = NULL, *json;
    size_t len = 0;
    bn_error err;
    int v, i;
    BNT_CHECK(vars && vars->len >= 4);
    BNT_CHECK(bn_read_file(TOKDIR "/spm32k/tokenizer.json", &raw, &len, &err) == BN_OK);
    if (!vars || !raw) return;
    json = (char *)malloc(len + 4096);
    for (v = 0; json && v < vars->len; v++) {
        const bn_json *var = &vars->child[v], *cases = bn_json_get(var, "cases");
        const char *pre = bn_json_string(var, "pre_tokenizer", ""), *dec = bn_json_string(var, "decoder", "");
        char *a = strstr(raw, "\"normalizer\""), *b = strstr(raw, "\"post_processor\""), *c = strstr(raw, "\"decoder\""),
             *d = strstr(raw, "\"model\"");
        size_t n = 0;
        bn_tokenizer *t = NULL;
        if (!a || !b || !c || !d || strlen(pre) + strlen(dec) > 2000) break;
        memcpy(json, raw, (size_t)(a - raw)); n += (size_t)(a - raw);
        n += (size_t)sprintf(json + n, "\"normalizer\": null,\n  \"pre_tokenizer\": %s,\n  ", pre);
        memcpy(json + n, b, (size_t)(c - b)); n += (size_t)(c - b);
        n += (size_t)sprintf(json + n, "\"decoder\": %s,\n  ", dec);
        memcpy(json + n, d, len - (size_t)(d - raw)); n += len - (size_t)(d - raw);
        BNT_CHECKF(bn_tokenizer_load_memory(&t, json, n, NULL, 0, "metaspace", &err) == BN_OK, "%s", err.msg);
        for (i = 0; t && i < cases->len; i++) {
            const bn_json *cs = &cases->child[i], *text = bn_json_get(cs, "text"), *want = bn_json_get(cs, "decoded");
            const bn_json *ids_json = bn_json_get(cs, text ? "ids" : "ids_only");
            int32_t *ids = NULL, given[8];
            size_t k = 0, dl = 0;
            char *out = NULL;
            if (text) {
                BNT_CHECK(bn_tokenizer_encode(t, text->str, (size_t)text->len, BN_TOK_PARSE_SPECIAL, &ids, &k, &err) == BN_OK);
                BNT_CHECKF(ids_equal(ids, k, ids_json), "variant %d: '%s'", v, text->str);
                if (!ids_equal(ids, k, ids_json)) print_ids("got", ids, k);
            } else {
                for (k = 0; k < (size_t)ids_json->len && k < 8; k++) given[k] = (int32_t)ids_json->child[k].num;
            }
            BNT_CHECK(bn_tokenizer_decode(t, text ? ids : given, k, 0, &out, &dl, &err) == BN_OK);
            BNT_CHECKF(out && dl == (size_t)want->len && memcmp(out, want->str, dl) == 0, "variant %d case %d: '%s'", v, i, out);
            bn_free(out);
            bn_free(ids);
        }
        bn_tokenizer_free(t);
    }
    free(json);
    bn_free(raw);
}

/* Ids must be justified by entries that exist: one vocab entry with id 2^28
   in a 48-byte file once made the loader allocate and fill 3.4 GB of per-id tables. */
static void test_ids_bounded_by_entries(void) {
    static const char *const bad[] = {
        "{\"model\":{\"vocab\":{\"a\":268435456},\"merges\":[]}}",
        "{\"model\":{\"vocab\":{\"a\":0,\"b\":4},\"merges\":[]}}",
        "{\"added_tokens\":[{\"id\":100000,\"content\":\"<s>\"}],\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
    };
    bn_tokenizer *tok = NULL;
    bn_error err;
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bn_status s = load_json(bad[i], &tok, &err);
        BNT_CHECKF(s == BN_ERR_FORMAT && strstr(err.msg, "token id"), "%s: %s", bad[i], s ? err.msg : "loaded");
        if (s) printf("    %s\n", err.msg);
        bn_tokenizer_free(tok);
        tok = NULL;
    }
    /* a gap is allowed while the ids stay below twice the entries */
    BNT_CHECK(load_json("{\"model\":{\"vocab\":{\"a\":0,\"b\":3},\"merges\":[]}}", &tok, &err) == BN_OK);
    if (tok) BNT_CHECK(bn_tokenizer_vocab_size(tok) == 4 && bn_tokenizer_id_to_token(tok, 2, NULL) == NULL);
    bn_tokenizer_free(tok);
}

/* Two added tokens with one id: each is matched as its own string (HF maps
   content -> id), the id decodes to the later one. The earlier one once kept
   its length but pointed at the later one's string, and matching read past it. */
static void test_added_tokens_same_id(void) {
    const char *json = "{\"added_tokens\":[{\"id\":0,\"content\":\"<longtoken>\",\"special\":true},"
                       "{\"id\":0,\"content\":\"<x>\",\"special\":true}],"
                       "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"<\":2},\"merges\":[]}}";
    bn_tokenizer *tok = NULL;
    bn_error err;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    const char *s;
    BNT_CHECKF(load_json(json, &tok, &err) == BN_OK, "%s", err.msg);
    if (!tok) return;
    BNT_CHECK(bn_tokenizer_token_to_id(tok, "<longtoken>", 11) == 0);
    BNT_CHECK(bn_tokenizer_token_to_id(tok, "<x>", 3) == 0);
    BNT_CHECKF(bn_tokenizer_encode(tok, "b<longtoken>a", 13, BN_TOK_PARSE_SPECIAL, &ids, &n, &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(n == 3 && ids[0] == 1 && ids[1] == 0 && ids[2] == 0, "%d ids", (int)n);
    bn_free(ids);
    s = bn_tokenizer_id_to_token(tok, 0, &len);
    BNT_CHECK(s && len == 3 && memcmp(s, "<x>", 3) == 0);
    bn_tokenizer_free(tok);
}

int main(void) {
    char *ref = NULL;
    size_t len = 0;
    bn_error err;
    if (bn_read_file(TOKDIR "/reference.json", &ref, &len, &err) || bn_json_parse(&g_ref, ref, len, "reference.json", &err)) {
        printf("cannot read the reference: %s\n", err.msg);
        return 1;
    }
    if (bn_tokenizer_load(&g_llama3, TOKDIR "/llama3", &err)) printf("llama3: %s\n", err.msg);
    if (bn_tokenizer_load(&g_spm, TOKDIR "/spm32k", &err)) printf("spm32k: %s\n", err.msg);
    bn_free(ref);
    ref = NULL;
    if (bn_read_file(TOKDIR "/extra_reference.json", &ref, &len, &err) ||
        bn_json_parse(&g_extra, ref, len, "extra_reference.json", &err))
        printf("cannot read the extra reference: %s\n", err.msg);
    BNT_RUN(test_unicode_classes);
    BNT_RUN(test_llama3_reference_cases);
    BNT_RUN(test_spm32k_reference_cases);
    BNT_RUN(test_llama3_extra_cases);
    BNT_RUN(test_pretokenizer_variants);
    BNT_RUN(test_decode_reference);
    BNT_RUN(test_llama3_tinyshakespeare);
    BNT_RUN(test_spm32k_tinyshakespeare);
    BNT_RUN(test_roundtrip_random_utf8);
    BNT_RUN(test_invalid_utf8);
    BNT_RUN(test_special_tokens_only_when_asked);
    BNT_RUN(test_stream_decode);
    BNT_RUN(test_chat_templates);
    BNT_RUN(test_bpe_rules);
    BNT_RUN(test_small_tokenizer_reference);
    BNT_RUN(test_metaspace_reference);
    BNT_RUN(test_component_errors);
    BNT_RUN(test_damaged_files);
    BNT_RUN(test_ids_bounded_by_entries);
    BNT_RUN(test_added_tokens_same_id);
    bn_tokenizer_free(g_llama3);
    bn_tokenizer_free(g_spm);
    bn_json_free(&g_ref);
    bn_json_free(&g_extra);
    bn_free(ref);
    return bnt_finish("test_tokenizer");
}
