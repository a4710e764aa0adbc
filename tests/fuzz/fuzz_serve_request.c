/* bitnet serve's request bodies (tools/serve_api.c): any bytes as the body of
   /v1/chat/completions, /v1/completions, /tokenize or /detokenize are accepted with parameters
   inside the server's limits, or refused with a 4xx or 5xx error that has a message; an accepted
   request's response bodies write as valid JSON. The first byte picks the endpoint. */
#include "../../bitnet.h"
#include "../../tools/jsonw.c"
#include "../../tools/serve_api.c"

#include <stdint.h>
#include <stdlib.h>

static void check_error(const api_error *e) {
    if (e->status < 400 || e->status > 599 || !e->message[0]) abort();
}

/* Writes a response and a chunk for an accepted request and parses them back. */
static void respond(const oai_request *r) {
    jw w;
    bn_json_doc doc;
    oai_meta m = {"id-1", "model", 0, NULL};
    oai_choice_view v;
    oai_logprob lp;
    oai_usage u = {1, 1, 0};
    float logits[8] = {0.5f, -1.0f, 3.0f, 0.0f, 0.0f, -7.0f, 2.0f, 1.0f};
    memset(&v, 0, sizeof v);
    memset(&lp, 0, sizeof lp);
    v.text = r->n_stop ? r->stop[0] : "text";
    v.len = strlen(v.text);
    v.logprobs = r->logprobs;
    oai_logprob_from_logits(&lp, logits, 8, 2, r->top_logprobs);
    v.lp = &lp;
    v.n_lp = 1;
    v.finish_reason = "stop";
    jw_init(&w);
    oai_write_response(&w, r->chat, &m, &v, 1, &u);
    if (w.oom || bn_json_parse(&doc, w.p, w.len, "response", NULL) != BN_OK) abort();
    bn_json_free(&doc);
    jw_reset(&w);
    oai_write_chunk(&w, r->chat, &m, &v, 1, r->include_usage);
    if (w.oom || bn_json_parse(&doc, w.p, w.len, "chunk", NULL) != BN_OK) abort();
    bn_json_free(&doc);
    jw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    oai_limits lim;
    oai_request r;
    api_error e;
    const char *body = (const char *)data + 1;
    int mode, i;
    if (size < 1) return 0;
    mode = data[0] % 4;
    size--;
    memset(&lim, 0, sizeof lim);
    lim.n_vocab = 1024;
    lim.max_n = 16;
    lim.sampler = bn_sampler_default_params();
    lim.max_tokens = -1;
    lim.seed = -1;
    lim.grammar_vocab = (const bn_grammar_vocab *)&lim; /* response_format: the parser only passes it on */
    if (mode < 2) {
        if (oai_parse_request(&r, mode == 0, body, size, &lim, &e)) {
            if (r.n < 1 || r.n > lim.max_n || r.n_stop > OAI_MAX_STOP || r.top_logprobs > OAI_MAX_TOP_LOGPROBS) abort();
            if (r.chat && r.n_messages < 1) abort();
            if (r.sampler.grammar && r.sampler.grammar_vocab != lim.grammar_vocab) abort();
            for (i = 0; !r.chat && i < r.n_prompts; i++)
                if (r.prompts[i].ids)
                    for (int k = 0; k < r.prompts[i].n_ids; k++)
                        if (r.prompts[i].ids[k] < 0 || r.prompts[i].ids[k] >= lim.n_vocab) abort();
            respond(&r);
        } else {
            check_error(&e);
        }
        oai_request_free(&r);
    } else if (mode == 2) {
        bn_json_doc doc;
        const char *text;
        size_t len;
        int add, parse;
        if (!oai_parse_tokenize(body, size, &doc, &text, &len, &add, &parse, &e)) check_error(&e);
        bn_json_free(&doc);
    } else {
        int32_t *ids;
        int n;
        if (oai_parse_detokenize(body, size, lim.n_vocab, &ids, &n, &e)) free(ids);
        else check_error(&e);
    }
    return 0;
}
