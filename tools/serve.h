/* serve.h: what the files of `bitnet serve` share. serve_api.c maps OpenAI request
   bodies to generation parameters and writes the response bodies (pure functions, no
   sockets: fuzzed and unit-tested on their own); serve.c is the server around them;
   serve_page.c is the chat page. */
#ifndef BITNET_SERVE_H
#define BITNET_SERVE_H

#include "../bitnet.h"
#include "jsonw.h"

/* An error answer: {"error": {"message", "type", "param", "code"}}. */
typedef struct api_error {
    int status;          /* HTTP status */
    char message[512];
    const char *type;    /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *param;   /* the request field at fault, or NULL */
    const char *code;    /* e.g. "context_length_exceeded", or NULL */
} api_error;

/* Sets e and returns 0, so that parsers can `return api_fail(...)`. */
int api_fail(api_error *e, int status, const char *type, const char *param, const char *code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
/* The error's JSON body into w. */
void api_error_json(jw *w, const api_error *e);

#define OAI_MAX_STOP 16
#define OAI_MAX_PROMPTS 16
#define OAI_MAX_TOP_LOGPROBS 20

/* One prompt of /v1/completions: text to tokenize, or token ids. */
typedef struct oai_prompt {
    const char *text; /* NULL when ids are given */
    size_t len;
    int32_t *ids;     /* malloc'd */
    int n_ids;
} oai_prompt;

/* What the server lets a request ask for, and its defaults. */
typedef struct oai_limits {
    int n_vocab;              /* token ids must be below this */
    int max_n;                /* most choices per request */
    bn_sampler_params sampler; /* defaults for what the request leaves out */
    int max_tokens;           /* default max_tokens (-1: until the end or the context is full) */
    int seed;                 /* default seed (-1: each request draws its own) */
    const char *const *stop;  /* default stop strings */
    int n_stop;
    int ignore_eos;           /* default ignore_eos */
    const bn_grammar_vocab *grammar_vocab; /* the tokens' bytes, for response_format (NULL: refused) */
} oai_limits;

typedef struct oai_request {
    int chat;                  /* /v1/chat/completions (messages) rather than /v1/completions (prompt) */
    bn_json_doc doc;           /* the parsed body: strings below point into it */
    bn_chat_message *messages; /* chat */
    int n_messages;
    char **parts;              /* contents joined from arrays of text parts (malloc'd) */
    int n_parts;
    oai_prompt *prompts;       /* completions */
    int n_prompts;
    bn_sampler_params sampler; /* the limits' defaults with the request's fields */
    int has_seed;
    bn_logit_bias *logit_bias; /* malloc'd; sampler.logit_bias points here */
    int max_tokens;            /* -1: no limit */
    int n;                     /* choices per prompt */
    const char *stop[OAI_MAX_STOP];
    int n_stop;
    int stream, include_usage;
    int logprobs;              /* 1: return log-probabilities */
    int top_logprobs;          /* alternatives per token (0..20) */
    int return_tokens;         /* extension: each choice carries its token ids */
    int ignore_eos;            /* extension: generate past end tokens (benchmarks) */
    char *grammar;             /* response_format json_schema as GBNF (malloc'd); sampler.grammar points here */
} oai_request;

/* Parses and checks a request body (chat: /v1/chat/completions, else /v1/completions).
   Returns 1, or 0 with e set (400 and the field at fault). Free with oai_request_free
   either way. */
int oai_parse_request(oai_request *r, int chat, const char *body, size_t len, const oai_limits *lim, api_error *e);
void oai_request_free(oai_request *r);

/* /tokenize {"content": "...", "add_special": false, "parse_special": false} and
   /detokenize {"tokens": [...]}: the fields, checked. */
int oai_parse_tokenize(const char *body, size_t len, bn_json_doc *doc, const char **text, size_t *text_len,
                       int *add_special, int *parse_special, api_error *e);
int oai_parse_detokenize(const char *body, size_t len, int n_vocab, int32_t **ids, int *n_ids, api_error *e);

/* ---- responses ---- */

/* One sampled token's log-probability and the most likely alternatives. */
typedef struct oai_logprob {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_token[OAI_MAX_TOP_LOGPROBS];
    float top_logprob[OAI_MAX_TOP_LOGPROBS];
} oai_logprob;

/* Fills lp from a row of logits: log-softmax at token, and the n_top best. */
void oai_logprob_from_logits(oai_logprob *lp, const float *logits, int n_vocab, int32_t token, int n_top);

/* A choice's text and tokens so far, as the response writers see it. */
typedef struct oai_choice_view {
    int index;
    const char *text;
    size_t len;
    int logprobs;          /* logprobs were asked for: lp[0..n_lp) */
    const oai_logprob *lp;
    int n_lp;
    size_t text_offset;    /* completions logprobs: the offset of the first token's text */
    int return_tokens;     /* tokens[0..n_tokens) were asked for */
    const int32_t *tokens;
    int n_tokens;
    const char *finish_reason; /* NULL while running */
} oai_choice_view;

typedef struct oai_meta {
    const char *id;      /* "chatcmpl-..." / "cmpl-..." */
    const char *model;
    long long created;
    const bn_tokenizer *tok; /* for the text of logprob tokens */
} oai_meta;

typedef struct oai_usage {
    int prompt_tokens, completion_tokens, cached_tokens;
} oai_usage;

/* A whole (non-streamed) response. */
void oai_write_response(jw *w, int chat, const oai_meta *m, const oai_choice_view *c, int n, const oai_usage *u);
/* One streamed chunk with one choice's new text (first: chat's delta carries the role);
   c->finish_reason set makes it the choice's last chunk. */
void oai_write_chunk(jw *w, int chat, const oai_meta *m, const oai_choice_view *c, int first, int include_usage);
/* The closing chunk with the usage (stream_options.include_usage). */
void oai_write_usage_chunk(jw *w, int chat, const oai_meta *m, const oai_usage *u);

/* The chat page (serve_page.c). */
extern const char *const SERVE_PAGE[];

#endif
