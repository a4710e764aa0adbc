/* Sequence state loading: any bytes load or are refused with an error, into
   a context of the tiny fixture model; a loaded state then decodes a token.
   When the first byte is odd, the rest gets a correct checksum first, so that
   the checks after it (model, shapes, tokens, context) are reached too. */
#include "../../bitnet.h"
#include <stdlib.h>
#include <string.h>

static bn_model *model;
static bn_context *ctx;

/* The state checksum (FNV-1a over 32-bit words), written again over data[0..n-8). */
static void fix_checksum(uint8_t *data, size_t n) {
    uint64_t h = 14695981039346656037ull;
    size_t i;
    if (n < 8) return;
    for (i = 0; i + 4 <= n - 8; i += 4) {
        uint32_t w;
        memcpy(&w, data + i, 4);
        h = (h ^ w) * 0x100000001B3ull;
    }
    memcpy(data + n - 8, &h, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy;
    bn_error err;
    if (!model) {
        bn_context_params cp = bn_context_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 1;
        if (bn_model_load(&model, "tests/fixtures/hf/tiny-mha-untied/packed", NULL, &err) != BN_OK ||
            bn_context_new(&ctx, model, &cp, &err) != BN_OK)
            abort();
    }
    if (size < 1) return 0;
    copy = (uint8_t *)malloc(size);
    if (!copy) return 0;
    memcpy(copy, data + 1, size - 1);
    if (data[0] & 1) fix_checksum(copy, size - 1);
    if (bn_seq_state_load(ctx, 0, copy, size - 1, &err) == BN_OK) {
        int32_t t = 1;
        if (bn_seq_len(ctx, 0) < 64) (void)bn_eval(ctx, 0, &t, 1, &err);
        bn_seq_truncate(ctx, 0, 0);
    }
    free(copy);
    return 0;
}
