/* The JSON parser on its own: values, escapes, numbers, and malformed input
   that must fail with an error naming the byte offset. */
#include <stdlib.h>

/* The library allocates through these: bytes requested since the last reset. */
static size_t bytes_requested;
static void *counting_malloc(size_t n) {
    bytes_requested += n;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n) {
    bytes_requested += n;
    return realloc(p, n);
}
#define BN_MALLOC(n) counting_malloc(n)
#define BN_REALLOC(p, n) counting_realloc(p, n)
#define BN_FREE(p) free(p)
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

static bn_status parse(bn_json_doc *doc, const char *s, bn_error *err) {
    return bn_json_parse(doc, s, strlen(s), "test.json", err);
}

static void test_values(void) {
    bn_json_doc doc;
    bn_error err;
    const bn_json *v;
    const char *s = "{\"a\": [1, -2.5e3, 0.125, true, false, null, \"x\"], \"b\": {\"c\": 1e-05}, \"e\": []}";
    BNT_CHECK(parse(&doc, s, &err) == BN_OK);
    BNT_CHECK(doc.root->type == BN_JSON_OBJECT && doc.root->len == 3);
    v = bn_json_get(doc.root, "a");
    BNT_CHECK(v && v->type == BN_JSON_ARRAY && v->len == 7);
    BNT_CHECK(v->child[0].num == 1.0 && v->child[1].num == -2500.0 && v->child[2].num == 0.125);
    BNT_CHECK(v->child[3].type == BN_JSON_TRUE && v->child[4].type == BN_JSON_FALSE);
    BNT_CHECK(v->child[5].type == BN_JSON_NULL && bn_json_streq(&v->child[6], "x"));
    BNT_CHECK(bn_json_number(bn_json_get(doc.root, "b"), "c", 0) == 1e-05);
    BNT_CHECK(bn_json_get(doc.root, "e")->len == 0);
    BNT_CHECK(bn_json_get(doc.root, "zz") == NULL);
    BNT_CHECK(bn_json_number(doc.root, "zz", 7.0) == 7.0);
    bn_json_free(&doc);
}

static void test_numbers_exact(void) {
    const char *cases[] = {"500000.0", "1e-06", "0.02", "1000042.0", "3.14159", "-0.0", "123456789012345678", "1E+2"};
    double want[] = {500000.0, 1e-06, 0.02, 1000042.0, 3.14159, -0.0, 123456789012345678.0, 100.0};
    int i;
    for (i = 0; i < 8; i++) {
        bn_json_doc doc;
        BNT_CHECK(parse(&doc, cases[i], NULL) == BN_OK);
        BNT_CHECKF(doc.root->num == want[i], "%s parsed as %.17g", cases[i], doc.root->num);
        bn_json_free(&doc);
    }
}

static void test_escapes(void) {
    bn_json_doc doc;
    /* \u00e9 = é (2 bytes), \ud83d\ude00 = U+1F600 (4 bytes), lone \udc00 -> U+FFFD */
    BNT_CHECK(parse(&doc, "\"a\\n\\t\\\"\\\\\\/\\u00e9\\ud83d\\ude00\\udc00\\u0000z\"", NULL) == BN_OK);
    BNT_CHECK(doc.root->len == 1 + 2 + 2 + 1 + 2 + 4 + 3 + 1 + 1);
    BNT_CHECK(memcmp(doc.root->str, "a\n\t\"\\/\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd\0z", 18) == 0);
    bn_json_free(&doc);
}

static void test_malformed(void) {
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "tru", "01", "1.", "-", "\"abc",
                         "\"\\x\"", "\"\\u12g4\"", "[1] 2", "{\"a\":1,}", "\"a\nb\"", "[\"\\u12", "nul"};
    int i;
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        bn_json_doc doc;
        bn_error err;
        bn_status st = parse(&doc, bad[i], &err);
        BNT_CHECKF(st == BN_ERR_FORMAT, "'%s' gave status %d", bad[i], (int)st);
        if (st == BN_ERR_FORMAT) BNT_CHECKF(strstr(err.msg, "test.json") && strstr(err.msg, "byte"), "%s", err.msg);
    }
}

static void test_depth_limit(void) {
    char buf[2 * (BN_JSON_MAX_DEPTH + 10) + 1];
    int i, n = BN_JSON_MAX_DEPTH + 10;
    bn_json_doc doc;
    bn_error err;
    for (i = 0; i < n; i++) { buf[i] = '['; buf[n + i] = ']'; }
    buf[2 * n] = 0;
    BNT_CHECK(parse(&doc, buf, &err) == BN_ERR_FORMAT);
    BNT_CHECK(strstr(err.msg, "deep") != NULL);
}

static void test_not_nul_terminated(void) {
    /* the parser must respect len, never read past it */
    char *s = (char *)malloc(5);
    bn_json_doc doc;
    memcpy(s, "[1,2", 4);
    s[4] = ']';
    BNT_CHECK(bn_json_parse(&doc, s, 4, "x", NULL) == BN_ERR_FORMAT);
    BNT_CHECK(bn_json_parse(&doc, s, 5, "x", NULL) == BN_OK);
    bn_json_free(&doc);
    free(s);
}

/* A small document costs a small allocation: every parse once took a 1 MB
   arena block up front (a few hundred parses a second under the sanitizers);
   the first block is sized from the input, and a large document still parses. */
static void test_small_document_small_arena(void) {
    bn_json_doc doc;
    bn_error err;
    char *big;
    size_t i, n = 300000;
    bytes_requested = 0;
    BNT_CHECK(parse(&doc, "{\"a\": [1, 2, \"three\"]}", &err) == BN_OK);
    BNT_CHECKF(bytes_requested < 16384, "%llu bytes for a 22-byte document", (unsigned long long)bytes_requested);
    if (doc.root) BNT_CHECK(doc.root->child[0].len == 3 && strcmp(doc.root->child[0].child[2].str, "three") == 0);
    bn_json_free(&doc);
    big = (char *)malloc(n + 3); /* [0,0,...,0]: many nodes for its size, over several blocks */
    big[0] = '[';
    for (i = 1; i + 1 < n; i += 2) big[i] = '0', big[i + 1] = ',';
    big[i - 1] = ']';
    big[i] = 0;
    BNT_CHECKF(parse(&doc, big, &err) == BN_OK, "%s", err.msg);
    if (doc.root) BNT_CHECK(doc.root->len == (int)((n - 1) / 2) && doc.root->child[doc.root->len - 1].type == BN_JSON_NUMBER);
    bn_json_free(&doc);
    free(big);
}

int main(void) {
    BNT_RUN(test_values);
    BNT_RUN(test_numbers_exact);
    BNT_RUN(test_escapes);
    BNT_RUN(test_malformed);
    BNT_RUN(test_depth_limit);
    BNT_RUN(test_not_nul_terminated);
    BNT_RUN(test_small_document_small_arena);
    return bnt_finish("test_json");
}
