/* A SafeTensors file from memory: header, tensor table, offsets; every tensor
   of a file that opens can be found by name and read as floats. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_safetensors *st = NULL;
    bn_error err;
    int i;
    if (bn_safetensors_load_memory(&st, data, size, "fuzz.safetensors", &err) != BN_OK) return 0;
    (void)bn_safetensors_metadata(st, "format");
    for (i = 0; i < st->n_tensors; i++) {
        const bn_safetensors_tensor *t = &st->tensors[i];
        size_t n = (size_t)bn_safetensors_numel(t);
        float *f;
        if (bn_safetensors_find(st, t->name) != t) abort(); /* names are unique and sorted */
        if (t->nbytes != n * bn_dtype_size(t->dtype) || t->offset + t->nbytes > size) abort();
        f = (float *)malloc(n ? n * sizeof(float) : 1);
        if (!f) abort();
        (void)bn_safetensors_read_f32(t, f, &err);
        free(f);
    }
    bn_safetensors_free(st);
    return 0;
}
