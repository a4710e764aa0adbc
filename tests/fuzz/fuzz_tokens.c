/* Encode arbitrary bytes and decode arbitrary ids with the real tokenizers
   (LLaMA 3 byte-level BPE, a SentencePiece-style 32k BPE, the shipped model's).
   Byte 0 picks the tokenizer (bits 0-1) and the flags (bits 2-5); bit 6 says
   whether the rest is text to encode or little-endian int32 ids to decode. */
#include "common.h"

static bn_tokenizer *toks[3];

static void load_once(void) {
    static const char *const dirs[] = {"tests/fixtures/tokenizers/llama3", "tests/fixtures/tokenizers/spm32k",
                                       "models/shakespeare"};
    bn_error err;
    int i;
    if (toks[0]) return;
    for (i = 0; i < 3; i++)
        if (bn_tokenizer_load(&toks[i], dirs[i], &err) != BN_OK) {
            fprintf(stderr, "fuzz_tokens: %s\n", err.msg);
            abort();
        }
}

static void check_decode(const bn_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags) {
    bn_error err;
    char *text = NULL;
    size_t len, i;
    int vocab = bn_tokenizer_vocab_size(tok), valid = 1;
    bn_utf8_stream s;
    for (i = 0; i < n; i++) valid &= ids[i] >= 0 && ids[i] < vocab;
    if (bn_tokenizer_decode(tok, ids, n, flags & BN_TOK_SKIP_SPECIAL, &text, &len, &err) == BN_OK) {
        if (text[len] != 0) abort();
        bn_free(text);
    } else if (valid) {
        abort(); /* every id in range decodes */
    }
    bn_utf8_stream_init(&s, tok, flags & BN_TOK_SKIP_SPECIAL);
    for (i = 0; i < n; i++) {
        const char *piece;
        (void)bn_utf8_stream_push(&s, ids[i], &piece, &len, &err);
    }
    {
        const char *piece;
        (void)bn_utf8_stream_flush(&s, &piece, &len, &err);
    }
    bn_utf8_stream_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const bn_tokenizer *tok;
    unsigned flags;
    bn_error err;
    if (size < 1) return 0;
    load_once();
    tok = toks[(data[0] & 3) % 3];
    flags = (data[0] >> 2) & 15u;
    if (data[0] & 64) {
        size_t n = (size - 1) / 4, i;
        int32_t *ids = (int32_t *)malloc(n * sizeof(int32_t) + 1);
        if (!ids) abort();
        for (i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, data + 1 + 4 * i, 4);
            /* mostly in range, sometimes not */
            ids[i] = (u & 0x80000000u) ? (int32_t)u : (int32_t)(u % (uint32_t)(bn_tokenizer_vocab_size(tok) + 1));
        }
        check_decode(tok, ids, n, flags);
        free(ids);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        bn_status st = bn_tokenizer_encode(tok, (const char *)data + 1, size - 1, flags & 7u, &ids, &n, &err);
        if (st == BN_OK) {
            check_decode(tok, ids, n, flags);
            bn_free(ids);
        } else if (st != BN_ERR_ARG) {
            abort(); /* only invalid UTF-8 (without BN_TOK_REPLACE_INVALID) is refused */
        }
    }
    return 0;
}
