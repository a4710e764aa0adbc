/* A sharded checkpoint: model.safetensors.index.json and up to three shards,
   the parts of the input separated by "\n#SHARD#\n" (shards a, b and c.safetensors). */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const shards[] = {"a.safetensors", "b.safetensors", "c.safetensors"};
    const char *dir = fuzz_dir("sharded");
    bn_safetensors *st = NULL;
    bn_error err;
    char path[512];
    const uint8_t *p;
    size_t n;
    int k;
    p = fuzz_part(data, size, "\n#SHARD#\n", 0, &n);
    fuzz_write(dir, "model.safetensors.index.json", p, n);
    for (k = 0; k < 3; k++) {
        p = fuzz_part(data, size, "\n#SHARD#\n", k + 1, &n);
        fuzz_write(dir, shards[k], p, p ? n : (size_t)-1);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (bn_safetensors_load(&st, path, &err) == BN_OK) {
        for (k = 0; k < st->n_tensors; k++) {
            const bn_safetensors_tensor *t = &st->tensors[k];
            float *f = (float *)malloc((size_t)bn_safetensors_numel(t) * sizeof(float) + 1);
            if (!f || bn_safetensors_find(st, t->name) != t) abort();
            (void)bn_safetensors_read_f32(t, f, &err);
            free(f);
        }
        bn_safetensors_free(st);
    }
    return 0;
}
