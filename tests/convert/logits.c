/* logits: bn_forward's logits for the HF parity prompt, compared with other folders' and HF's.

       logits REFERENCE.safetensors [--save OUT.safetensors] DIR...

   Runs each model folder on the reference's input_ids (one batch, every token's logits) and
   prints one JSON line: for each folder, the relative L2 distance of its logits to HF's
   logits of each variant (master, packed, packed-autobit), and to the first folder's logits.
   tests/convert/test_convert.py reads it. --save writes every folder's logits, f32
   [tokens, vocab] named by the folder as given, for tools/hf_convert_check.py. */
#define BITNET_IMPLEMENTATION
#include "../../bitnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_ref(const bn_safetensors *ref, const char *name, size_t *n) {
    const bn_safetensors_tensor *t = bn_safetensors_find(ref, name);
    float *out;
    if (!t) return NULL;
    *n = (size_t)bn_safetensors_numel(t);
    out = (float *)malloc(*n * sizeof(float));
    if (out && bn_safetensors_read_f32(t, out, NULL) != BN_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *model_logits(const char *dir, const int32_t *ids, int n, int *vocab) {
    bn_model *m = NULL;
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    bn_batch b;
    bn_error err;
    int32_t pos[256];
    int8_t want[256];
    float *out = NULL;
    int i;
    cp.n_threads = 1;
    if (bn_model_load(&m, dir, NULL, &err) != BN_OK || bn_context_new(&ctx, m, &cp, &err) != BN_OK) {
        fprintf(stderr, "logits: %s: %s\n", dir, err.msg);
        bn_model_free(m);
        return NULL;
    }
    *vocab = bn_model_config(m)->vocab_size;
    for (i = 0; i < n; i++) pos[i] = i, want[i] = 1;
    memset(&b, 0, sizeof b);
    b.n_tokens = n;
    b.token = ids;
    b.pos = pos;
    b.want_logits = want;
    if (bn_forward(ctx, &b, &err) == BN_OK && (out = (float *)malloc(sizeof(float) * (size_t)n * (size_t)*vocab)))
        for (i = 0; i < n; i++) memcpy(out + (size_t)i * (size_t)*vocab, bn_get_logits(ctx, i), sizeof(float) * (size_t)*vocab);
    else if (!out)
        fprintf(stderr, "logits: %s: %s\n", dir, err.msg);
    bn_context_free(ctx);
    bn_model_free(m);
    return out;
}

int main(int argc, char **argv) {
    static const char *const variants[] = {"master", "packed", "packed-autobit"};
    bn_safetensors *ref = NULL;
    bn_error err;
    size_t n_ids = 0, n_ref;
    float *ids_f, *first = NULL, *saved[64];
    bn_safetensors_tensor out[64];
    const char *save = NULL;
    int32_t ids[256];
    int i, k, vocab = 0, n_saved = 0, k0 = 2, rc = 0;
    if (argc > 3 && !strcmp(argv[2], "--save")) save = argv[3], k0 = 4;
    if (argc <= k0 || argc - k0 > 64 || bn_safetensors_load(&ref, argv[1], &err) != BN_OK) {
        fprintf(stderr, "usage: logits REFERENCE.safetensors [--save OUT.safetensors] DIR... (at most 64)\n");
        return 2;
    }
    ids_f = read_ref(ref, "input_ids", &n_ids);
    if (!ids_f || n_ids > 256) return 1;
    for (i = 0; i < (int)n_ids; i++) ids[i] = (int32_t)ids_f[i];
    printf("{");
    for (k = k0; k < argc; k++) {
        float *got = model_logits(argv[k], ids, (int)n_ids, &vocab);
        size_t n = n_ids * (size_t)vocab;
        if (!got) return 1;
        printf("%s\"%s\": {", k > k0 ? ", " : "", argv[k]);
        for (i = 0; i < 3; i++) {
            char name[64];
            float *want;
            snprintf(name, sizeof name, "%s.logits", variants[i]);
            want = read_ref(ref, name, &n_ref);
            if (want && n_ref == n) printf("\"%s\": %.6e, ", variants[i], rel_l2(got, want, n));
            free(want);
        }
        printf("\"first\": %.6e}", first ? rel_l2(got, first, n) : 0.0);
        if (save) {
            memset(&out[n_saved], 0, sizeof out[n_saved]);
            out[n_saved].name = argv[k];
            out[n_saved].dtype = BN_DTYPE_F32;
            out[n_saved].n_dims = 2;
            out[n_saved].shape[0] = (int64_t)n_ids;
            out[n_saved].shape[1] = vocab;
            out[n_saved].data = got;
            saved[n_saved++] = got;
        }
        if (!first) first = got;
        else if (!save) free(got);
    }
    printf("}\n");
    if (save && bn_safetensors_write(save, out, n_saved, NULL, &err) != BN_OK) {
        fprintf(stderr, "logits: %s\n", err.msg);
        rc = 1;
    }
    if (save)
        for (i = 0; i < n_saved; i++) free(saved[i]);
    else
        free(first);
    free(ids_f);
    bn_safetensors_free(ref);
    return rc;
}
