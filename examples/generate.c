/* generate.c - the whole text-in, text-out loop of bitnet.h in one page.

   Build and run (from the repository root):
       cc -O2 examples/generate.c -o generate -lm -lpthread
       ./generate models/shakespeare "JULIET:" 120

   Load the model and its tokenizer, turn the prompt into ids, then repeat:
   run the new token(s) through the transformer (the KV cache keeps the past),
   sample the next token from the logits, print its text. */
#define _DEFAULT_SOURCE /* lets bitnet.h ask Linux for huge pages for the weights (madvise) */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const bn_error *err) {
    fprintf(stderr, "generate: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/shakespeare";
    const char *prompt = argc > 2 ? argv[2] : "JULIET:";
    int n_new = argc > 3 ? atoi(argv[3]) : 100, i;
    bn_model *model;
    bn_tokenizer *tok;
    bn_context *ctx;
    bn_sampler *sampler;
    bn_sampler_params sp = bn_sampler_default_params();
    bn_utf8_stream stream;
    bn_error err;
    int32_t *ids, next;
    size_t n_ids, len;
    const char *piece;

    if (bn_model_load(&model, dir, NULL, &err) || bn_tokenizer_load(&tok, dir, &err)) return fail(&err);
    if (bn_context_new(&ctx, model, NULL, &err)) return fail(&err);
    sp.seed = 7;
    if (bn_sampler_new(&sampler, &sp, bn_model_config(model)->vocab_size, &err)) return fail(&err);
    if (bn_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &n_ids, &err)) return fail(&err);
    if (n_ids == 0) return fprintf(stderr, "generate: the prompt has no tokens\n"), 1;

    printf("%s", prompt);
    bn_utf8_stream_init(&stream, tok, BN_TOK_SKIP_SPECIAL);
    for (i = 0; i < (int)n_ids; i++) bn_sampler_accept(sampler, ids[i]);
    if (bn_eval(ctx, 0, ids, (int)n_ids, &err)) return fail(&err); /* the prompt, in one batch */
    for (i = 0; i < n_new; i++) {
        next = bn_sampler_sample(sampler, bn_get_logits(ctx, -1));
        bn_sampler_accept(sampler, next);
        if (bn_utf8_stream_push(&stream, next, &piece, &len, &err)) return fail(&err);
        fwrite(piece, 1, len, stdout); /* only whole UTF-8 characters */
        fflush(stdout);
        if (bn_eval(ctx, 0, &next, 1, &err)) break; /* one token; stops when the context is full */
    }
    if (bn_utf8_stream_flush(&stream, &piece, &len, &err) == BN_OK) fwrite(piece, 1, len, stdout);
    printf("\n");

    bn_utf8_stream_free(&stream);
    bn_free(ids);
    bn_sampler_free(sampler);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    return 0;
}
