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
    BNT_RUN(test_llama3_reference_cases);
    BNT_RUN(test_spm32k_reference_cases);
    BNT_RUN(test_llama3_tinyshakespeare);
    BNT_RUN(test_spm32k_tinyshakespeare);
    bn_tokenizer_free(g_llama3);
    bn_tokenizer_free(g_spm);
    bn_json_free(&g_ref);
    bn_free(ref);
    return bnt_finish("test_tokenizer");
}
