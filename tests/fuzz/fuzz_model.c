/* A whole model load with a fuzzed config.json (generation_config.json after
   a NUL byte) beside a small valid checkpoint (tests/fixtures/hf, packed,
   master or autobitlinear weights, picked by the input's length), then a
   context and a few tokens through the transformer. */
#include "common.h"
#include <limits.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const weights[] = {"tests/fixtures/hf/tiny-gqa-tied/packed/model.safetensors",
                                          "tests/fixtures/hf/tiny-mha-untied/master/model.safetensors",
                                          "tests/fixtures/hf/llama-bitnet/packed-autobit/model.safetensors"};
    static char linked[3];
    const char *dir = fuzz_dir("model");
    const uint8_t *nul = (const uint8_t *)memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    int which = (int)(size % 3);
    char sub[512], link[600], target[PATH_MAX];
    bn_model_params mp = bn_model_default_params();
    bn_model *m = NULL;
    bn_error err;
    snprintf(sub, sizeof sub, "%s/%d", dir, which);
    if (!linked[which]) { /* the weights, linked once per process */
        fuzz_mkdir(sub);
        snprintf(link, sizeof link, "%s/model.safetensors", sub);
        if (!realpath(weights[which], target) || (symlink(target, link) != 0 && access(link, R_OK) != 0)) abort();
        fuzz_remember(link);
        linked[which] = 1;
    }
    fuzz_write(sub, "config.json", data, n);
    fuzz_write(sub, "generation_config.json", nul ? nul + 1 : NULL, nul ? size - n - 1 : (size_t)-1);
    mp.limits = fuzz_limits();
    if (bn_model_load(&m, sub, &mp, &err) == BN_OK) {
        const bn_config *c = bn_model_config(m);
        bn_context_params cp = bn_context_default_params();
        bn_context *ctx = NULL;
        cp.n_ctx = c->max_seq_len < 16 ? c->max_seq_len : 16;
        cp.n_threads = 1;
        cp.limits = fuzz_limits();
        if (bn_context_new(&ctx, m, &cp, &err) == BN_OK) {
            int32_t tokens[3];
            int i, k;
            for (i = 0; i < 3; i++) tokens[i] = (int32_t)((size + 7u * (unsigned)i) % (unsigned)c->vocab_size);
            if (bn_eval(ctx, 0, tokens, cp.n_ctx < 3 ? cp.n_ctx : 3, &err) == BN_OK) {
                const float *logits = bn_get_logits(ctx, -1);
                if (!logits) abort();
                for (k = 0; k < c->vocab_size; k++) (void)(logits[k] == logits[k]);
            }
            bn_context_free(ctx);
        }
        bn_model_free(m);
    }
    return 0;
}
