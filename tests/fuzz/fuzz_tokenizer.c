/* tokenizer.json (and tokenizer_config.json after a NUL byte) loaded from
   memory; a tokenizer that loads then encodes a few texts, decodes its ids,
   streams them and formats a chat. */
#include "common.h"

static void exercise(const bn_tokenizer *tok) {
    static const char *const texts[] = {"Hello world", " <s>a</s>\n\n  b", "caf\xc3\xa9 \xe2\x96\x81x 123", "\xff\xfe"};
    bn_chat_message msgs[2] = {{"system", "be brief"}, {"user", "hi <|eot_id|>"}};
    bn_error err;
    int32_t *ids = NULL, all[64];
    size_t n = 0, len, i, t;
    char *text = NULL;
    int vocab = bn_tokenizer_vocab_size(tok), k;
    for (t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        unsigned flags = (unsigned)t & 3u; /* ADD_SPECIAL, PARSE_SPECIAL */
        if (bn_tokenizer_encode(tok, texts[t], strlen(texts[t]), flags | BN_TOK_REPLACE_INVALID, &ids, &n, &err) == BN_OK) {
            for (i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= vocab) abort();
            if (bn_tokenizer_decode(tok, ids, n, 0, &text, &len, &err) == BN_OK) bn_free(text);
            bn_free(ids);
        }
    }
    for (k = 0; k < 64; k++) all[k] = (int32_t)(k * 7 % (vocab + 2)) - 1; /* -1 and vocab: out of range */
    if (bn_tokenizer_decode(tok, all, 64, BN_TOK_SKIP_SPECIAL, &text, &len, &err) == BN_OK) bn_free(text);
    {
        bn_utf8_stream s;
        const char *piece;
        bn_utf8_stream_init(&s, tok, 0);
        for (k = 0; k < 64; k++)
            if (all[k] >= 0 && all[k] < vocab && bn_tokenizer_id_to_token(tok, all[k], NULL))
                (void)bn_utf8_stream_push(&s, all[k], &piece, &len, &err);
        (void)bn_utf8_stream_flush(&s, &piece, &len, &err);
        bn_utf8_stream_free(&s);
    }
    if (bn_chat_format(tok, BN_CHAT_AUTO, msgs, 2, 1, &text, &len, &err) == BN_OK) bn_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = (const uint8_t *)memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    bn_tokenizer *tok = NULL;
    bn_error err;
    if (bn_tokenizer_load_memory(&tok, (const char *)data, n, nul ? (const char *)nul + 1 : NULL,
                                 nul ? size - n - 1 : 0, "fuzz/tokenizer.json", &err) == BN_OK) {
        exercise(tok);
        bn_tokenizer_free(tok);
    }
    return 0;
}
