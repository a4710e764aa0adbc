/* serve_api.c: OpenAI's request and response bodies for `bitnet serve` (see serve.h).
   The spec is OpenAI's API reference for /v1/chat/completions and /v1/completions;
   fields it defines that the server cannot honour are refused with a 400 naming them,
   never silently ignored; fields that only describe the caller (user, metadata, ...)
   are ignored as they would be by any model without them. */
#include "serve.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_fail(api_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    e->status = status;
    e->type = type;
    e->param = param;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return 0;
}

void api_error_json(jw *w, const api_error *e) {
    jw_obj(w);
    jw_key(w, "error");
    jw_obj(w);
    jw_key(w, "message");
    jw_cstr(w, e->message);
    jw_key(w, "type");
    jw_cstr(w, e->type ? e->type : "invalid_request_error");
    jw_key(w, "param");
    jw_cstr(w, e->param);
    jw_key(w, "code");
    jw_cstr(w, e->code);
    jw_obj_end(w);
    jw_obj_end(w);
}

/* ---- request fields ---- */

#define INVALID "invalid_request_error"

static const char *json_type_name(const bn_json *v) {
    switch (v->type) {
    case BN_JSON_NULL: return "null";
    case BN_JSON_FALSE:
    case BN_JSON_TRUE: return "a boolean";
    case BN_JSON_NUMBER: return "a number";
    case BN_JSON_STRING: return "a string";
    case BN_JSON_ARRAY: return "an array";
    case BN_JSON_OBJECT: return "an object";
    }
    return "?";
}

static int wrong_type(api_error *e, const char *param, const char *expected, const bn_json *got) {
    return api_fail(e, 400, INVALID, param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
                    param, expected, json_type_name(got));
}

/* A member that is present and not null, or NULL. */
static const bn_json *field(const bn_json *obj, const char *key) {
    const bn_json *v = bn_json_get(obj, key);
    return v && v->type != BN_JSON_NULL ? v : NULL;
}

/* An optional number in [lo, hi]; *out unchanged when absent. */
static int opt_number(const bn_json *obj, const char *key, double lo, double hi, float *out, api_error *e) {
    const bn_json *v = field(obj, key);
    if (!v) return 1;
    if (v->type != BN_JSON_NUMBER) return wrong_type(e, key, "a number", v);
    if (!(v->num >= lo && v->num <= hi))
        return api_fail(e, 400, INVALID, key, "invalid_value", "Invalid '%s': expected a value in [%g, %g], but got %g.",
                        key, lo, hi, v->num);
    *out = (float)v->num;
    return 1;
}

/* An optional integer in [lo, hi]. */
static int opt_int(const bn_json *obj, const char *key, int lo, int hi, int *out, api_error *e) {
    const bn_json *v = field(obj, key);
    if (!v) return 1;
    if (!bn_json_is_int(v)) return wrong_type(e, key, "an integer", v);
    if (v->num < lo || v->num > hi)
        return api_fail(e, 400, INVALID, key, "invalid_value", "Invalid '%s': expected an integer in [%d, %d], but got %.0f.",
                        key, lo, hi, v->num);
    *out = (int)v->num;
    return 1;
}

static int opt_bool(const bn_json *obj, const char *key, int *out, api_error *e) {
    const bn_json *v = field(obj, key);
    if (!v) return 1;
    if (v->type != BN_JSON_TRUE && v->type != BN_JSON_FALSE) return wrong_type(e, key, "a boolean", v);
    *out = v->type == BN_JSON_TRUE;
    return 1;
}

/* A string without NUL characters (the library takes C strings). */
static int no_nul(const bn_json *v, const char *param, api_error *e) {
    if (memchr(v->str, 0, (size_t)v->len))
        return api_fail(e, 400, INVALID, param, "invalid_value", "Invalid '%s': the text contains a NUL character.", param);
    return 1;
}

/* A field the server cannot honour: refused rather than ignored. */
static int unsupported(api_error *e, const char *param, const char *why) {
    return api_fail(e, 400, INVALID, param, "unsupported_parameter", "Unsupported parameter '%s': %s", param, why);
}

/* The text of a message's content: a string, null, or an array of text parts. */
static int message_content(oai_request *r, const bn_json *c, const char **out, api_error *e) {
    size_t total = 0, at = 0;
    int i;
    char *joined;
    if (!c || c->type == BN_JSON_NULL) {
        *out = "";
        return 1;
    }
    if (c->type == BN_JSON_STRING) {
        *out = c->str;
        return no_nul(c, "messages.content", e);
    }
    if (c->type != BN_JSON_ARRAY) return wrong_type(e, "messages.content", "a string or an array of content parts", c);
    for (i = 0; i < c->len; i++) {
        const bn_json *part = &c->child[i], *text = bn_json_get(part, "text");
        if (part->type != BN_JSON_OBJECT) return wrong_type(e, "messages.content", "a content part object", part);
        if (!bn_json_streq(bn_json_get(part, "type"), "text"))
            return unsupported(e, "messages.content", "only parts of type 'text' are supported (this model reads text).");
        if (!text || text->type != BN_JSON_STRING) return wrong_type(e, "messages.content.text", "a string", text ? text : part);
        if (!no_nul(text, "messages.content.text", e)) return 0;
        total += (size_t)text->len;
    }
    joined = (char *)malloc(total + 1);
    if (!joined) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    r->parts[r->n_parts++] = joined;
    for (i = 0; i < c->len; i++) {
        const bn_json *text = bn_json_get(&c->child[i], "text");
        memcpy(joined + at, text->str, (size_t)text->len);
        at += (size_t)text->len;
    }
    joined[at] = 0;
    *out = joined;
    return 1;
}

static int parse_messages(oai_request *r, const bn_json *root, api_error *e) {
    const bn_json *m = bn_json_get(root, "messages");
    int i;
    if (!m) return api_fail(e, 400, INVALID, "messages", "missing_required_parameter", "Missing required parameter: 'messages'.");
    if (m->type != BN_JSON_ARRAY) return wrong_type(e, "messages", "an array", m);
    if (m->len == 0)
        return api_fail(e, 400, INVALID, "messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1.");
    r->messages = (bn_chat_message *)calloc((size_t)m->len, sizeof *r->messages);
    r->parts = (char **)calloc((size_t)m->len, sizeof *r->parts);
    if (!r->messages || !r->parts) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    for (i = 0; i < m->len; i++) {
        const bn_json *msg = &m->child[i], *role = bn_json_get(msg, "role");
        if (msg->type != BN_JSON_OBJECT) return wrong_type(e, "messages", "an array of message objects", msg);
        if (!role || role->type != BN_JSON_STRING) return wrong_type(e, "messages.role", "a string", role ? role : msg);
        if (bn_json_streq(role, "developer")) r->messages[i].role = "system"; /* the newer name of the system role */
        else if (bn_json_streq(role, "system") || bn_json_streq(role, "user") || bn_json_streq(role, "assistant"))
            r->messages[i].role = role->str;
        else if (bn_json_streq(role, "tool") || bn_json_streq(role, "function"))
            return unsupported(e, "messages.role", "tool and function messages need tool calling, which this server does not do.");
        else
            return api_fail(e, 400, INVALID, "messages.role", "invalid_value",
                            "Invalid 'messages[%d].role': expected one of system, developer, user, assistant.", i);
        if (!message_content(r, bn_json_get(msg, "content"), &r->messages[i].content, e)) return 0;
    }
    r->n_messages = m->len;
    return 1;
}

/* An array of token ids, each below n_vocab. */
static int token_ids(const bn_json *a, const oai_limits *lim, const char *param, int32_t **ids, int *n, api_error *e) {
    int i;
    *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(a->len ? a->len : 1));
    if (!*ids) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    for (i = 0; i < a->len; i++) {
        const bn_json *v = &a->child[i];
        if (!bn_json_is_int(v)) return wrong_type(e, param, "an array of integer token ids", v);
        if (v->num < 0 || v->num >= lim->n_vocab)
            return api_fail(e, 400, INVALID, param, "invalid_value", "Invalid '%s': token id %.0f is outside the vocabulary [0, %d).",
                            param, v->num, lim->n_vocab);
        (*ids)[i] = (int32_t)v->num;
    }
    *n = a->len;
    return 1;
}

static int parse_prompt(oai_request *r, const bn_json *root, const oai_limits *lim, api_error *e) {
    const bn_json *p = bn_json_get(root, "prompt");
    int i, n;
    if (!p) return api_fail(e, 400, INVALID, "prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.");
    if (p->type != BN_JSON_STRING && p->type != BN_JSON_ARRAY)
        return wrong_type(e, "prompt", "a string, an array of strings, or an array of token ids", p);
    if (p->type == BN_JSON_ARRAY && p->len == 0)
        return api_fail(e, 400, INVALID, "prompt", "empty_array", "Invalid 'prompt': empty array.");
    /* a string, or an array of token ids: one prompt; an array of strings or of arrays: several */
    n = p->type == BN_JSON_STRING || p->child[0].type == BN_JSON_NUMBER ? 1 : p->len;
    if (n > OAI_MAX_PROMPTS)
        return api_fail(e, 400, INVALID, "prompt", "invalid_value", "Invalid 'prompt': at most %d prompts per request.", OAI_MAX_PROMPTS);
    r->prompts = (oai_prompt *)calloc((size_t)n, sizeof *r->prompts);
    if (!r->prompts) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    r->n_prompts = n;
    if (p->type == BN_JSON_STRING) {
        r->prompts[0].text = p->str;
        r->prompts[0].len = (size_t)p->len;
        return 1;
    }
    if (n == 1 && p->child[0].type == BN_JSON_NUMBER) return token_ids(p, lim, "prompt", &r->prompts[0].ids, &r->prompts[0].n_ids, e);
    for (i = 0; i < n; i++) {
        const bn_json *v = &p->child[i];
        if (v->type == BN_JSON_STRING) {
            r->prompts[i].text = v->str;
            r->prompts[i].len = (size_t)v->len;
        } else if (v->type == BN_JSON_ARRAY && v->len > 0) {
            if (!token_ids(v, lim, "prompt", &r->prompts[i].ids, &r->prompts[i].n_ids, e)) return 0;
        } else {
            return wrong_type(e, "prompt", "a string, an array of strings, or an array of token ids", v);
        }
    }
    return 1;
}

static int parse_stop(oai_request *r, const bn_json *root, api_error *e) {
    const bn_json *s = field(root, "stop");
    int i;
    if (!s) return 1;
    r->n_stop = 0; /* the request's replace the server's defaults */
    if (s->type == BN_JSON_STRING) {
        if (s->len) r->stop[r->n_stop++] = s->str;
        return no_nul(s, "stop", e);
    }
    if (s->type != BN_JSON_ARRAY) return wrong_type(e, "stop", "a string or an array of strings", s);
    if (s->len > OAI_MAX_STOP)
        return api_fail(e, 400, INVALID, "stop", "invalid_value", "Invalid 'stop': at most %d stop strings.", OAI_MAX_STOP);
    for (i = 0; i < s->len; i++) {
        if (s->child[i].type != BN_JSON_STRING) return wrong_type(e, "stop", "an array of strings", &s->child[i]);
        if (!no_nul(&s->child[i], "stop", e)) return 0;
        if (s->child[i].len) r->stop[r->n_stop++] = s->child[i].str;
    }
    return 1;
}

/* {"token id": bias, ...} with bias in [-100, 100]. */
static int parse_logit_bias(oai_request *r, const bn_json *root, const oai_limits *lim, api_error *e) {
    const bn_json *b = field(root, "logit_bias");
    int i;
    if (!b) return 1;
    if (b->type != BN_JSON_OBJECT) return wrong_type(e, "logit_bias", "an object", b);
    if (b->len == 0) return 1;
    r->logit_bias = (bn_logit_bias *)calloc((size_t)b->len, sizeof *r->logit_bias);
    if (!r->logit_bias) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory.");
    for (i = 0; i < b->len; i++) {
        const bn_json *v = &b->child[i];
        char *end;
        long id = strtol(v->key, &end, 10);
        if (v->key_len == 0 || *end || id < 0 || id >= lim->n_vocab)
            return api_fail(e, 400, INVALID, "logit_bias", "invalid_value",
                            "Invalid 'logit_bias': keys must be token ids in [0, %d).", lim->n_vocab);
        if (v->type != BN_JSON_NUMBER) return wrong_type(e, "logit_bias", "numbers as values", v);
        if (!(v->num >= -100 && v->num <= 100))
            return api_fail(e, 400, INVALID, "logit_bias", "invalid_value", "Invalid 'logit_bias': biases must be in [-100, 100].");
        r->logit_bias[i].token = (int32_t)id;
        r->logit_bias[i].bias = v->num <= -100 ? -INFINITY : (float)v->num; /* -100 bans the token, as OpenAI says */
    }
    r->sampler.logit_bias = r->logit_bias;
    r->sampler.n_logit_bias = b->len;
    return 1;
}

/* logprobs / top_logprobs: a boolean and a count on chat, a count on completions. */
static int parse_logprobs(oai_request *r, const bn_json *root, api_error *e) {
    const bn_json *lp = field(root, "logprobs");
    if (r->chat) {
        if (!opt_bool(root, "logprobs", &r->logprobs, e)) return 0;
        if (!opt_int(root, "top_logprobs", 0, OAI_MAX_TOP_LOGPROBS, &r->top_logprobs, e)) return 0;
        if (r->top_logprobs > 0 && !r->logprobs)
            return api_fail(e, 400, INVALID, "top_logprobs", "invalid_value", "Invalid 'top_logprobs': needs 'logprobs' set to true.");
        return 1;
    }
    if (!lp) return 1;
    if (lp->type == BN_JSON_TRUE || lp->type == BN_JSON_FALSE) {
        r->logprobs = lp->type == BN_JSON_TRUE;
        return 1;
    }
    if (!opt_int(root, "logprobs", 0, 5, &r->top_logprobs, e)) return 0;
    r->logprobs = 1;
    return 1;
}

/* Fields of OpenAI's API that this server cannot honour. */
static int refuse_unsupported(oai_request *r, const bn_json *root, api_error *e) {
    const bn_json *v;
    if ((v = field(root, "tools")) && !(v->type == BN_JSON_ARRAY && v->len == 0))
        return unsupported(e, "tools", "tool calling is not supported.");
    if ((v = field(root, "functions")) && !(v->type == BN_JSON_ARRAY && v->len == 0))
        return unsupported(e, "functions", "function calling is not supported.");
    if (!r->chat) {
        if ((v = field(root, "echo")) && v->type == BN_JSON_TRUE) return unsupported(e, "echo", "echoing the prompt is not supported.");
        if ((v = field(root, "suffix")) && !(v->type == BN_JSON_STRING && v->len == 0))
            return unsupported(e, "suffix", "insertion (fill in the middle) is not supported.");
        if ((v = field(root, "best_of")) && !(bn_json_is_int(v) && (int)v->num == r->n))
            return unsupported(e, "best_of", "only best_of equal to n is supported.");
    }
    if ((v = field(root, "modalities")) && v->type == BN_JSON_ARRAY) {
        int i;
        for (i = 0; i < v->len; i++)
            if (!bn_json_streq(&v->child[i], "text")) return unsupported(e, "modalities", "this model outputs text only.");
    }
    return 1;
}

/* response_format: {"type": "text"} (no constraint, not even the server's --grammar),
   {"type": "json_object"} (any JSON object), or {"type": "json_schema", "json_schema":
   {"name": .., "schema": {..}, "strict": ..}} (JSON valid against the schema, in the subset of
   docs/grammars.md; strict or not, the schema is always enforced). The schema becomes GBNF here
   and is compiled once to check it, so that a schema the subset lacks (the keyword named) or
   one that cannot be generated is a 400 before anything is queued; each choice's sampler
   compiles it again and follows it on its own. */
static int parse_response_format(oai_request *r, const bn_json *root, const oai_limits *lim, api_error *e) {
    const bn_json *rf = field(root, "response_format"), *type, *js, *schema, *v;
    bn_grammar *g = NULL;
    bn_error err;
    bn_status st;
    if (!rf) return 1;
    if (rf->type != BN_JSON_OBJECT) return wrong_type(e, "response_format", "an object", rf);
    type = bn_json_get(rf, "type");
    if (!type) return api_fail(e, 400, INVALID, "response_format.type", "missing_required_parameter",
                               "Missing required parameter: 'response_format.type'.");
    if (type->type != BN_JSON_STRING) return wrong_type(e, "response_format.type", "a string", type);
    r->sampler.grammar = r->sampler.grammar_root = r->sampler.json_schema = NULL;
    if (bn_json_streq(type, "text")) return 1;
    if (!bn_json_streq(type, "json_object") && !bn_json_streq(type, "json_schema"))
        return api_fail(e, 400, INVALID, "response_format.type", "invalid_value",
                        "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.");
    if (!lim->grammar_vocab) return unsupported(e, "response_format", "this server has no vocabulary for grammars.");
    if (bn_json_streq(type, "json_object")) {
        st = bn_json_schema_to_gbnf("{\"type\": \"object\"}", 18, &r->grammar, NULL, &err);
    } else {
        js = bn_json_get(rf, "json_schema");
        if (!js) return api_fail(e, 400, INVALID, "response_format.json_schema", "missing_required_parameter",
                                 "Missing required parameter: 'response_format.json_schema'.");
        if (js->type != BN_JSON_OBJECT) return wrong_type(e, "response_format.json_schema", "an object", js);
        if ((v = field(js, "name")) && v->type != BN_JSON_STRING)
            return wrong_type(e, "response_format.json_schema.name", "a string", v);
        if ((v = field(js, "strict")) && v->type != BN_JSON_TRUE && v->type != BN_JSON_FALSE)
            return wrong_type(e, "response_format.json_schema.strict", "a boolean", v);
        schema = bn_json_get(js, "schema");
        if (!schema) return api_fail(e, 400, INVALID, "response_format.json_schema.schema", "missing_required_parameter",
                                     "Missing required parameter: 'response_format.json_schema.schema'.");
        st = bn_json_schema_node_to_gbnf(schema, &r->grammar, NULL, &err);
        if (st == BN_ERR_UNSUPPORTED)
            return api_fail(e, 400, INVALID, "response_format", "unsupported_value",
                            "Unsupported JSON Schema in 'response_format.json_schema.schema': %s", err.msg);
        if (st && st != BN_ERR_NOMEM)
            return api_fail(e, 400, INVALID, "response_format", "invalid_value",
                            "Invalid JSON Schema in 'response_format.json_schema.schema': %s", err.msg);
    }
    if (!st) st = bn_grammar_parse(&g, r->grammar, strlen(r->grammar), NULL, &err);
    bn_grammar_free(g);
    if (st == BN_ERR_NOMEM) return api_fail(e, 500, "server_error", NULL, NULL, "Out of memory for the response_format.");
    if (st) return api_fail(e, 400, INVALID, "response_format", "invalid_value",
                            "This response_format cannot be generated: %s", err.msg);
    r->sampler.grammar = r->grammar;
    r->sampler.grammar_vocab = lim->grammar_vocab;
    return 1;
}

static int parse_sampling(oai_request *r, const bn_json *root, api_error *e) {
    const bn_json *v;
    int max_tokens = r->max_tokens;
    if (!opt_number(root, "temperature", 0.0, 2.0, &r->sampler.temperature, e)) return 0;
    if (!opt_number(root, "top_p", 0.0, 1.0, &r->sampler.top_p, e)) return 0;
    if (!opt_int(root, "top_k", 0, 1 << 30, &r->sampler.top_k, e)) return 0;
    if (!opt_number(root, "min_p", 0.0, 1.0, &r->sampler.min_p, e)) return 0;
    if (!opt_number(root, "presence_penalty", -2.0, 2.0, &r->sampler.presence_penalty, e)) return 0;
    if (!opt_number(root, "frequency_penalty", -2.0, 2.0, &r->sampler.frequency_penalty, e)) return 0;
    if (!opt_number(root, "repeat_penalty", 0.01, 100.0, &r->sampler.repeat_penalty, e)) return 0;
    if (!opt_int(root, "max_tokens", 0, 1 << 30, &max_tokens, e)) return 0;
    if (!opt_int(root, "max_completion_tokens", 0, 1 << 30, &max_tokens, e)) return 0;
    r->max_tokens = max_tokens;
    if ((v = field(root, "seed"))) {
        if (v->type != BN_JSON_NUMBER || v->num != floor(v->num) || fabs(v->num) > 9.2e18)
            return wrong_type(e, "seed", "an integer", v);
        r->sampler.seed = (uint64_t)(int64_t)v->num;
        r->has_seed = 1;
    }
    return 1;
}

int oai_parse_request(oai_request *r, int chat, const char *body, size_t len, const oai_limits *lim, api_error *e) {
    bn_error err;
    const bn_json *root, *v;
    size_t bad = 0;
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->sampler = lim->sampler;
    r->max_tokens = lim->max_tokens;
    r->n = 1;
    r->ignore_eos = lim->ignore_eos;
    if (lim->seed >= 0) {
        r->sampler.seed = (uint64_t)lim->seed;
        r->has_seed = 1;
    }
    for (r->n_stop = 0; r->n_stop < lim->n_stop && r->n_stop < OAI_MAX_STOP; r->n_stop++) r->stop[r->n_stop] = lim->stop[r->n_stop];
    if (!utf8_valid(body, len, &bad))
        return api_fail(e, 400, INVALID, NULL, "invalid_encoding", "The request body is not valid UTF-8 (byte %lu).",
                        (unsigned long)bad);
    if (bn_json_parse(&r->doc, body, len, "request body", &err) != BN_OK)
        return api_fail(e, 400, INVALID, NULL, "invalid_json", "We could not parse the JSON body of your request: %s", err.msg);
    root = r->doc.root;
    if (root->type != BN_JSON_OBJECT) return wrong_type(e, "body", "a JSON object", root);
    if ((v = field(root, "model")) && v->type != BN_JSON_STRING) return wrong_type(e, "model", "a string", v);
    if (!(chat ? parse_messages(r, root, e) : parse_prompt(r, root, lim, e))) return 0;
    if (!parse_sampling(r, root, e) || !parse_stop(r, root, e) || !parse_logit_bias(r, root, lim, e)) return 0;
    if (!parse_response_format(r, root, lim, e)) return 0;
    if (!opt_int(root, "n", 1, lim->max_n, &r->n, e)) return 0;
    if (!opt_bool(root, "stream", &r->stream, e) || !parse_logprobs(r, root, e)) return 0;
    if (!opt_bool(root, "return_tokens", &r->return_tokens, e) || !opt_bool(root, "ignore_eos", &r->ignore_eos, e)) return 0;
    if ((v = field(root, "stream_options"))) {
        if (v->type != BN_JSON_OBJECT) return wrong_type(e, "stream_options", "an object", v);
        if (!opt_bool(v, "include_usage", &r->include_usage, e)) return 0;
    }
    return refuse_unsupported(r, root, e);
}

void oai_request_free(oai_request *r) {
    int i;
    for (i = 0; i < r->n_parts; i++) free(r->parts[i]);
    for (i = 0; i < r->n_prompts; i++) free(r->prompts[i].ids);
    free(r->parts);
    free(r->messages);
    free(r->prompts);
    free(r->logit_bias);
    bn_free(r->grammar);
    bn_json_free(&r->doc);
    memset(r, 0, sizeof *r);
}

/* A body that must be a JSON object. */
static int parse_object(const char *body, size_t len, bn_json_doc *doc, api_error *e) {
    bn_error err;
    if (!utf8_valid(body, len, NULL))
        return api_fail(e, 400, INVALID, NULL, "invalid_encoding", "The request body is not valid UTF-8.");
    if (bn_json_parse(doc, body, len, "request body", &err) != BN_OK)
        return api_fail(e, 400, INVALID, NULL, "invalid_json", "We could not parse the JSON body of your request: %s", err.msg);
    if (doc->root->type != BN_JSON_OBJECT) return wrong_type(e, "body", "a JSON object", doc->root);
    return 1;
}

int oai_parse_tokenize(const char *body, size_t len, bn_json_doc *doc, const char **text, size_t *text_len,
                       int *add_special, int *parse_special, api_error *e) {
    const bn_json *c;
    memset(doc, 0, sizeof *doc);
    if (!parse_object(body, len, doc, e)) return 0;
    c = bn_json_get(doc->root, "content");
    if (!c) return api_fail(e, 400, INVALID, "content", "missing_required_parameter", "Missing required parameter: 'content'.");
    if (c->type != BN_JSON_STRING) return wrong_type(e, "content", "a string", c);
    *text = c->str;
    *text_len = (size_t)c->len;
    *add_special = 0;
    *parse_special = 0;
    return opt_bool(doc->root, "add_special", add_special, e) && opt_bool(doc->root, "parse_special", parse_special, e);
}

int oai_parse_detokenize(const char *body, size_t len, int n_vocab, int32_t **ids, int *n_ids, api_error *e) {
    bn_json_doc doc;
    const bn_json *t;
    oai_limits lim;
    int ok;
    memset(&doc, 0, sizeof doc);
    *ids = NULL;
    *n_ids = 0;
    if (!parse_object(body, len, &doc, e)) {
        bn_json_free(&doc);
        return 0;
    }
    t = bn_json_get(doc.root, "tokens");
    memset(&lim, 0, sizeof lim);
    lim.n_vocab = n_vocab;
    if (!t) ok = api_fail(e, 400, INVALID, "tokens", "missing_required_parameter", "Missing required parameter: 'tokens'.");
    else if (t->type != BN_JSON_ARRAY) ok = wrong_type(e, "tokens", "an array of token ids", t);
    else ok = token_ids(t, &lim, "tokens", ids, n_ids, e);
    bn_json_free(&doc);
    if (!ok) {
        free(*ids);
        *ids = NULL;
    }
    return ok;
}

/* ---- log-probabilities ---- */

void oai_logprob_from_logits(oai_logprob *lp, const float *logits, int n_vocab, int32_t token, int n_top) {
    double max = logits[0], sum = 0.0, lse;
    int i, k;
    for (i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    for (i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    lse = max + log(sum);
    lp->token = token;
    lp->logprob = (float)((double)logits[token] - lse);
    if (n_top > OAI_MAX_TOP_LOGPROBS) n_top = OAI_MAX_TOP_LOGPROBS;
    if (n_top > n_vocab) n_top = n_vocab;
    lp->n_top = 0;
    for (i = 0; i < n_vocab && n_top > 0; i++) { /* insertion into the best n_top, highest first, ties by id */
        float x = logits[i];
        if (lp->n_top == n_top && x <= logits[lp->top_token[n_top - 1]]) continue;
        k = lp->n_top < n_top ? lp->n_top++ : n_top - 1;
        while (k > 0 && logits[lp->top_token[k - 1]] < x) {
            lp->top_token[k] = lp->top_token[k - 1];
            k--;
        }
        lp->top_token[k] = i;
    }
    for (k = 0; k < lp->n_top; k++) lp->top_logprob[k] = (float)((double)logits[lp->top_token[k]] - lse);
}

/* ---- responses ---- */

/* A token's own text (the bytes it adds when decoded alone). */
static void token_text(const bn_tokenizer *tok, int32_t id, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!tok || bn_tokenizer_decode(tok, &id, 1, 0u, text, len, NULL) != BN_OK) {
        bn_free(*text);
        *text = NULL;
        *len = 0;
    }
}

/* Chat's {"token", "logprob", "bytes"}: bytes are the raw UTF-8, which a token may end inside. */
static void chat_token(jw *w, const bn_tokenizer *tok, int32_t id, float logprob) {
    char *text;
    size_t len, i;
    token_text(tok, id, &text, &len);
    jw_key(w, "token");
    jw_str(w, text ? text : "", len);
    jw_key(w, "logprob");
    jw_num(w, logprob);
    jw_key(w, "bytes");
    jw_arr(w);
    for (i = 0; i < len; i++) jw_int(w, (unsigned char)text[i]);
    jw_arr_end(w);
    bn_free(text);
}

static void chat_logprobs(jw *w, const oai_meta *m, const oai_choice_view *c) {
    int i, k;
    jw_obj(w);
    jw_key(w, "content");
    jw_arr(w);
    for (i = 0; i < c->n_lp; i++) {
        const oai_logprob *lp = &c->lp[i];
        jw_obj(w);
        chat_token(w, m->tok, lp->token, lp->logprob);
        jw_key(w, "top_logprobs");
        jw_arr(w);
        for (k = 0; k < lp->n_top; k++) {
            jw_obj(w);
            chat_token(w, m->tok, lp->top_token[k], lp->top_logprob[k]);
            jw_obj_end(w);
        }
        jw_arr_end(w);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "refusal");
    jw_null(w);
    jw_obj_end(w);
}

/* Completions' {"tokens", "token_logprobs", "top_logprobs", "text_offset"}. */
static void completion_logprobs(jw *w, const oai_meta *m, const oai_choice_view *c) {
    int i, k;
    size_t offset = c->text_offset;
    char *text;
    size_t len;
    jw_obj(w);
    jw_key(w, "tokens");
    jw_arr(w);
    for (i = 0; i < c->n_lp; i++) {
        token_text(m->tok, c->lp[i].token, &text, &len);
        jw_str(w, text ? text : "", len);
        bn_free(text);
    }
    jw_arr_end(w);
    jw_key(w, "token_logprobs");
    jw_arr(w);
    for (i = 0; i < c->n_lp; i++) jw_num(w, c->lp[i].logprob);
    jw_arr_end(w);
    jw_key(w, "top_logprobs");
    jw_arr(w);
    for (i = 0; i < c->n_lp; i++) {
        jw_obj(w);
        for (k = 0; k < c->lp[i].n_top; k++) {
            token_text(m->tok, c->lp[i].top_token[k], &text, &len);
            jw_keyn(w, text ? text : "", len); /* the key is the token's text */
            jw_num(w, c->lp[i].top_logprob[k]);
            bn_free(text);
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "text_offset");
    jw_arr(w);
    for (i = 0; i < c->n_lp; i++) {
        jw_int(w, (long long)offset);
        token_text(m->tok, c->lp[i].token, &text, &len);
        offset += len;
        bn_free(text);
    }
    jw_arr_end(w);
    jw_obj_end(w);
}

static void write_head(jw *w, int chat, int chunk, const oai_meta *m) {
    jw_key(w, "id");
    jw_cstr(w, m->id);
    jw_key(w, "object");
    jw_cstr(w, chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    jw_key(w, "created");
    jw_int(w, m->created);
    jw_key(w, "model");
    jw_cstr(w, m->model);
    jw_key(w, "system_fingerprint");
    jw_cstr(w, "bitnet.h-" BITNET_VERSION);
}

static void write_usage(jw *w, const oai_usage *u) {
    jw_obj(w);
    jw_key(w, "prompt_tokens");
    jw_int(w, u->prompt_tokens);
    jw_key(w, "completion_tokens");
    jw_int(w, u->completion_tokens);
    jw_key(w, "total_tokens");
    jw_int(w, u->prompt_tokens + u->completion_tokens);
    jw_key(w, "prompt_tokens_details");
    jw_obj(w);
    jw_key(w, "cached_tokens");
    jw_int(w, u->cached_tokens);
    jw_obj_end(w);
    jw_obj_end(w);
}

/* The members of a choice after its index: message / delta / text, logprobs, finish_reason. */
static void write_choice(jw *w, int chat, int chunk, int first, const oai_meta *m, const oai_choice_view *c) {
    jw_obj(w);
    jw_key(w, "index");
    jw_int(w, c->index);
    if (chat) {
        jw_key(w, chunk ? "delta" : "message");
        jw_obj(w);
        if (!chunk || first) {
            jw_key(w, "role");
            jw_cstr(w, "assistant");
        }
        if (!chunk || c->len || first) {
            jw_key(w, "content");
            jw_str(w, c->text, c->len);
        }
        if (!chunk) {
            jw_key(w, "refusal");
            jw_null(w);
        }
        jw_obj_end(w);
    } else {
        jw_key(w, "text");
        jw_str(w, c->text, c->len);
    }
    jw_key(w, "logprobs");
    if (c->logprobs && (c->n_lp > 0 || !chunk)) {
        if (chat) chat_logprobs(w, m, c);
        else completion_logprobs(w, m, c);
    } else {
        jw_null(w);
    }
    if (c->return_tokens) {
        int i;
        jw_key(w, "tokens");
        jw_arr(w);
        for (i = 0; i < c->n_tokens; i++) jw_int(w, c->tokens[i]);
        jw_arr_end(w);
    }
    jw_key(w, "finish_reason");
    jw_cstr(w, c->finish_reason);
    jw_obj_end(w);
}

void oai_write_response(jw *w, int chat, const oai_meta *m, const oai_choice_view *c, int n, const oai_usage *u) {
    int i;
    jw_obj(w);
    write_head(w, chat, 0, m);
    jw_key(w, "choices");
    jw_arr(w);
    for (i = 0; i < n; i++) write_choice(w, chat, 0, 0, m, &c[i]);
    jw_arr_end(w);
    jw_key(w, "usage");
    write_usage(w, u);
    jw_obj_end(w);
}

void oai_write_chunk(jw *w, int chat, const oai_meta *m, const oai_choice_view *c, int first, int include_usage) {
    jw_obj(w);
    write_head(w, chat, 1, m);
    jw_key(w, "choices");
    jw_arr(w);
    write_choice(w, chat, 1, first, m, c);
    jw_arr_end(w);
    if (include_usage) { /* OpenAI: "usage": null on every chunk but the last */
        jw_key(w, "usage");
        jw_null(w);
    }
    jw_obj_end(w);
}

void oai_write_usage_chunk(jw *w, int chat, const oai_meta *m, const oai_usage *u) {
    jw_obj(w);
    write_head(w, chat, 1, m);
    jw_key(w, "choices");
    jw_arr(w);
    jw_arr_end(w);
    jw_key(w, "usage");
    write_usage(w, u);
    jw_obj_end(w);
}
