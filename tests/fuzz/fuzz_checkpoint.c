/* A training checkpoint (SafeTensors with "config" and "step" metadata and the
   AdamW moments): loaded into a model and optimizer, or refused. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("checkpoint");
    char path[512];
    bn_train_model *m = NULL;
    bn_adamw opt;
    bn_error err;
    fuzz_write(dir, "ckpt.safetensors", data, size);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    if (bn_train_checkpoint_load(&m, (size & 1) ? &opt : NULL, path, &err) == BN_OK) {
        if (bn_train_model_n_weights(m) * 2 > size) abort(); /* no more weights than the file holds (bf16 at least) */
        if (size & 1) bn_adamw_free(&opt);
        bn_train_model_free(m);
    }
    return 0;
}
