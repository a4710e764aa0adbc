/* The JSON parser: any bytes parse or fail with an error, and every node of a
   parsed tree can be walked and read back. */
#include "../../bitnet.h"

static size_t walk(const bn_json *v, int depth) {
    size_t n = 1;
    int i;
    if (v->type == BN_JSON_STRING) n += (size_t)v->len + (v->str[v->len] == 0); /* NUL-terminated at len */
    if (v->type == BN_JSON_OBJECT) {
        for (i = 0; i < v->len; i++) n += (size_t)v->child[i].key_len + (v->child[i].key[v->child[i].key_len] == 0);
        if (v->len) (void)bn_json_get(v, v->child[v->len - 1].key);
        (void)bn_json_number(v, "a", 0.0);
        (void)bn_json_string(v, "a", NULL);
        (void)bn_json_bool(v, "a", 0);
    }
    (void)bn_json_is_int(v);
    (void)bn_json_streq(v, "a");
    if (v->type == BN_JSON_ARRAY || v->type == BN_JSON_OBJECT)
        for (i = 0; i < v->len; i++) n += walk(&v->child[i], depth + 1);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_json_doc doc;
    bn_error err;
    if (bn_json_parse(&doc, (const char *)data, size, "fuzz", &err) == BN_OK) {
        walk(doc.root, 0);
        bn_json_free(&doc);
    }
    return 0;
}
