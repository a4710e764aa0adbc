/* generate.c - text in, text out with bitnet.h, in one page.

   Build and run (from the repository root):
       cc -O2 examples/generate.c -o generate -lm -lpthread
       ./generate models/shakespeare "JULIET:" 120

   Load the model and its tokenizer, turn the prompt into ids, and let
   bn_generate run the loop: the prompt through the transformer in one batch,
   then sample a token from the logits, run it through (the KV cache keeps the
   past), and again. With the tokenizer it hands the callback finished text:
   whole UTF-8 characters, cut before any stop string, ended at an end token. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const bn_error *err) {
    fprintf(stderr, "generate: %s\n", err->msg);
    return 1;
}

/* Called once per generated token with the text it completed, then once more
   (token -1) with whatever was still held back. */
static int print_text(void *user, const bn_token_event *ev) {
    (void)user;
    fwrite(ev->text, 1, ev->len, stdout);
    fflush(stdout);
    return 0; /* nonzero would stop generation */
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/shakespeare";
    const char *prompt = argc > 2 ? argv[2] : "JULIET:";
    int n_new = argc > 3 ? atoi(argv[3]) : 100;
    bn_model *model;
    bn_tokenizer *tok;
    bn_context *ctx;
    bn_sampler *sampler;
    bn_sampler_params sp = bn_sampler_default_params();
    bn_generate_params gp = bn_generate_default_params();
    bn_error err;
    int32_t *ids;
    size_t n_ids;

    if (bn_model_load(&model, dir, NULL, &err) || bn_tokenizer_load(&tok, dir, &err)) return fail(&err);
    if (bn_context_new(&ctx, model, NULL, &err)) return fail(&err);
    sp.seed = 7; /* temperature 0.8, top-p 0.95 ... by default; see bn_sampler_params */
    if (bn_sampler_new(&sampler, &sp, bn_model_config(model)->vocab_size, &err)) return fail(&err);
    if (bn_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &n_ids, &err)) return fail(&err);
    if (n_ids == 0) return fprintf(stderr, "generate: the prompt has no tokens\n"), 1;

    printf("%s", prompt);
    gp.max_new_tokens = n_new;
    gp.tokenizer = tok; /* ids -> text, end tokens, stop strings (gp.stop) */
    gp.on_token = print_text;
    if (bn_generate(ctx, 0, sampler, ids, (int)n_ids, &gp, NULL, 0, NULL, &err)) return fail(&err);
    printf("\n");

    bn_free(ids);
    bn_sampler_free(sampler);
    bn_context_free(ctx);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    return 0;
}
