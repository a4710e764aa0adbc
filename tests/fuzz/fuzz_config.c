/* config.json (and generation_config.json after a NUL byte) to a bn_config:
   every accepted config has sizes the rest of the library can rely on. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = (const uint8_t *)memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *cfg = fuzz_strdup(data, n), *gen = nul ? fuzz_strdup(nul + 1, size - n - 1) : NULL;
    bn_config c;
    bn_error err;
    if (bn_config_parse(&c, cfg, gen, "fuzz/config.json", &err) == BN_OK) {
        if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
            c.head_dim <= 0 || c.head_dim % 2 || c.n_heads % c.n_kv_heads || c.max_seq_len <= 0 ||
            c.n_eos < 0 || c.n_eos > BN_MAX_EOS || !(c.rms_norm_eps > 0.0f) || !(c.rope_theta > 0.0f))
            abort();
    }
    free(cfg);
    free(gen);
    return 0;
}
