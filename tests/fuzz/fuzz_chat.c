/* Chat formatting with real tokenizers: messages (role and content, parts of
   the input separated by NUL bytes) formatted with a template picked by byte
   0, then encoded with special tokens parsed, as bitnet chat does. */
#include "common.h"

static bn_tokenizer *toks[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const bn_chat_template tmpl[] = {BN_CHAT_AUTO, BN_CHAT_UNKNOWN, BN_CHAT_LLAMA3, BN_CHAT_BITNET};
    bn_chat_message msgs[8];
    char *parts[16];
    size_t len;
    int n_parts = 0, k;
    bn_error err;
    char *out = NULL;
    const bn_tokenizer *tok;
    if (!toks[0] && (bn_tokenizer_load(&toks[0], "tests/fixtures/tokenizers/llama3", &err) != BN_OK ||
                     bn_tokenizer_load(&toks[1], "models/shakespeare", &err) != BN_OK))
        abort();
    if (size < 1) return 0;
    tok = toks[(data[0] >> 3) & 1];
    /* the parts: split at NUL bytes */
    {
        size_t start = 1, i;
        for (i = 1; i <= size && n_parts < 16; i++)
            if (i == size || data[i] == 0) {
                parts[n_parts++] = fuzz_strdup(data + start, i - start);
                start = i + 1;
            }
    }
    for (k = 0; k + 1 < n_parts; k += 2) {
        msgs[k / 2].role = parts[k];
        msgs[k / 2].content = parts[k + 1];
    }
    if (bn_chat_format(tok, tmpl[data[0] & 3], msgs, (size_t)(n_parts / 2), (data[0] >> 2) & 1, &out, &len, &err) ==
        BN_OK) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (out[len] != 0) abort();
        if (bn_tokenizer_encode(tok, out, len, BN_TOK_PARSE_SPECIAL | BN_TOK_REPLACE_INVALID, &ids, &n_ids, &err) ==
            BN_OK)
            bn_free(ids);
        bn_free(out);
    }
    for (k = 0; k < n_parts; k++) free(parts[k]);
    return 0;
}
