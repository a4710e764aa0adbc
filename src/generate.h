#ifndef BN_PART_GENERATE_H
#define BN_PART_GENERATE_H
#include "base.h"
#include "model.h"
#include "forward.h"
#include "tokenizer.h"
#include "sampler.h"
/* Generation on top of bn_forward: the decode loop with stop conditions and
   streaming text, scoring a window, beam search, and a scheduler that decodes
   many sequences together (continuous batching).

   The output path is one-way. Give bn_generate (or a batcher request) the
   tokenizer and every sampled id goes, once, through

       bn_utf8_stream   ids -> text in whole UTF-8 characters (holds back a
                        character split across tokens)
       bn_stop_stream   text -> the text before any stop string (holds back a
                        tail that may begin a stop string)

   and the callback gets finished text: printable as it comes, cut before the
   first stop string, never half a character. End tokens are never decoded;
   the default end tokens are the model's (config.json and
   generation_config.json) plus the tokenizer's eos_token. At the end one rule
   holds whatever the reason: a closing call (token -1) hands out what was
   still held back (an incomplete character as U+FFFD), except after a stop
   string, where nothing of the stop string or what follows it is shown. */

/* ---- what generation reports ---- */

typedef enum bn_stop_reason {
    BN_STOP_NONE = 0,
    BN_STOP_EOS,          /* an end token was sampled */
    BN_STOP_STRING,       /* a stop string appeared in the text */
    BN_STOP_MAX_TOKENS,   /* max_new_tokens generated */
    BN_STOP_CONTEXT_FULL, /* the sequence reached the context length */
    BN_STOP_CANCELLED,    /* the callback returned nonzero, or bn_batcher_cancel */
    BN_STOP_ERROR,        /* batcher: turning the request's ids into text failed (out of memory) */
    BN_STOP_GRAMMAR       /* the sampler's grammar allows no token (its text is complete, no end token) */
} bn_stop_reason;

/* One sampled token as bn_generate's and the batcher's callbacks see it.
   Every sampled token gets one call (end tokens too, with no text); then one
   closing call with token -1 carries the held-back tail and the stop reason.
   Pointers are valid during the call only. */
typedef struct bn_token_event {
    int id;               /* the batcher's request id (bn_batcher_add); 0 in bn_generate */
    int32_t token;        /* the sampled id; -1 in the closing call */
    int index;            /* tokens generated before this one (the closing call: all of them) */
    const char *text;     /* text that became safe to show with this token, NUL-terminated;
                             "" without a tokenizer, and while text is held back */
    size_t len;
    const float *logits;  /* the model's logits it was sampled from (before the sampler's
                             changes: for log-probabilities); NULL in the closing call */
    int n_vocab;
    int end_token;        /* 1: an end token: it has no text and ends generation (never with ignore_eos) */
    bn_stop_reason reason; /* BN_STOP_NONE, except in the closing call */
} bn_token_event;

/* Return nonzero to stop (BN_STOP_CANCELLED); the closing call's return is ignored. */
typedef int (*bn_token_fn)(void *user, const bn_token_event *ev);

typedef struct bn_generate_result {
    bn_stop_reason reason;
    int n_prompt;     /* prompt tokens */
    int n_cached;     /* batcher: prompt tokens whose KV cache an earlier request in the slot left (not recomputed) */
    int n_generated;  /* tokens sampled (the end token or the one completing a stop string included) */
    double prompt_s;  /* seconds in prompt processing (batcher: from bn_batcher_add to the first token) */
    double gen_s;     /* seconds generating (sampling + decoding) */
} bn_generate_result;

/* ---- the decode loop ---- */

typedef struct bn_generate_params {
    int max_new_tokens;              /* < 0: until an end token, a stop string or a full context. Default -1 */
    const int32_t *eos;              /* end tokens; NULL: the model's and the tokenizer's eos_token */
    int n_eos;
    int ignore_eos;                  /* keep going past end tokens */
    const bn_tokenizer *tokenizer;   /* NULL: no text (events carry ids and logits only) */
    unsigned decode_flags;           /* bn_tokenizer_decode flags; default BN_TOK_SKIP_SPECIAL */
    const char *const *stop;         /* stop strings (need the tokenizer); kept alive by the caller */
    int n_stop;
    bn_token_fn on_token;            /* may be NULL */
    void *user;
} bn_generate_params;

BN_EXTERN_C_BEGIN
BN_API bn_generate_params bn_generate_default_params(void);
BN_API const char *bn_stop_reason_name(bn_stop_reason reason);
/* Append prompt to sequence seq of ctx, then sample and decode until a stop
   condition. out (may be NULL) receives up to max_out generated tokens.
   Afterwards the sequence holds the prompt and every generated token but the
   last one sampled (its logits are never needed to stop); append it yourself
   to continue the conversation. Errors leave the tokens evaluated so far. */
BN_API bn_status bn_generate(bn_context *ctx, int seq, bn_sampler *sampler, const int32_t *prompt, int n_prompt,
                             const bn_generate_params *params, int32_t *out, int max_out, bn_generate_result *res,
                             bn_error *err);
/* Score a window: append tokens[0..n) to sequence seq (as bn_eval does) with
   logits at every position, and write logprob[i] = log p(tokens[i + 1] | the
   sequence up to tokens[i]) in nats, for i = 0 .. n - 2. The sum of -logprob
   over a text is its cross-entropy; exp of its mean, the perplexity. */
BN_API bn_status bn_score(bn_context *ctx, int seq, const int32_t *tokens, int n, double *logprob, bn_error *err);
BN_EXTERN_C_END

/* ---- beam search ---- */

/* Uses the KV-cache slots first_seq .. first_seq + n_beams - 1 of a context. */
typedef struct bn_beam_params {
    int n_beams;           /* width; default 4 */
    int max_new_tokens;    /* default 32 */
    float length_penalty;  /* score = sum of log-probs / (generated length ^ length_penalty); default 1 */
    int early_stopping;    /* 1: stop once n_beams hypotheses ended with EOS (default);
                              0: stop when no running beam can beat the worst finished one */
    const int32_t *eos;    /* NULL: the model's and the tokenizer's eos_token */
    int n_eos;
    const bn_tokenizer *tokenizer; /* may be NULL: only for its eos_token */
    const bn_logit_bias *logit_bias; /* added to the logits before the log-softmax; may be NULL */
    int n_logit_bias;
} bn_beam_params;

typedef struct bn_beam_hyp {
    int32_t *tokens;  /* generated tokens (an ending end token included) */
    int n_tokens;
    int ended;        /* 1: the last token is an end token */
    float sum_logprob;
    float score;      /* sum_logprob / n_tokens ^ length_penalty */
} bn_beam_hyp;

typedef struct bn_beam_result {
    int n;             /* hypotheses, best first */
    bn_beam_hyp *hyps;
} bn_beam_result;

BN_EXTERN_C_BEGIN
BN_API bn_beam_params bn_beam_default_params(void);
/* Beam search from prompt, using KV slots first_seq .. first_seq + n_beams - 1
   (their contents are replaced). Fills r with up to n_beams hypotheses, best first. */
BN_API bn_status bn_beam_search(bn_context *ctx, int first_seq, const int32_t *prompt, int n_prompt,
                                const bn_beam_params *params, bn_beam_result *r, bn_error *err);
BN_API void bn_beam_result_free(bn_beam_result *r);
BN_EXTERN_C_END

/* ---- the batcher: many sequences, one forward per step ----

   A server's loop: bn_batcher_add a request whenever one arrives (it joins at
   the next step), call bn_batcher_step while any is active. Each step is one
   bn_forward: one token for every decoding request plus a chunk of the
   prompts of joining ones. A request reports through its callbacks, in order:
   on_token once per sampled token (id, finished text, the logits it was
   sampled from), on_token once more with token -1 (the held-back tail and the
   stop reason), then on_done with the reason and the counts; its slot is free
   again when on_done runs. Callbacks run inside bn_batcher_step (or
   bn_batcher_cancel) on the calling thread; they may call bn_batcher_add and
   bn_batcher_cancel.

   The prompt cache: a finished request leaves its tokens' keys and values in
   its slot. A new request goes to the free slot whose tokens share the longest
   start with its prompt, and only the rest of the prompt is computed (a chat's
   earlier turns are not computed again). The result is the same, bit for bit,
   as computing the whole prompt: the cached positions hold what the same
   tokens at the same positions compute. bn_generate_result.n_cached says how
   many prompt tokens were reused. */

typedef struct bn_batcher bn_batcher;

typedef struct bn_request_params {
    bn_sampler_params sampler;     /* default: greedy (temperature 0) */
    int max_new_tokens;            /* < 0: until an end token, a stop string or a full context */
    int ignore_eos;
    const bn_tokenizer *tokenizer; /* NULL: no text; its eos_token joins the batcher's end tokens */
    unsigned decode_flags;         /* default BN_TOK_SKIP_SPECIAL */
    const char *const *stop;       /* stop strings (need the tokenizer); copied by bn_batcher_add */
    int n_stop;
    bn_token_fn on_token;          /* may be NULL; nonzero return: the request ends, BN_STOP_CANCELLED */
    void (*on_done)(void *user, int id, const bn_generate_result *res); /* may be NULL */
    void *user;
} bn_request_params;

typedef struct bn_batcher_params {
    int n_slots;        /* sequences at once: slots 0..n_slots-1 of the context; default: the context's n_seq */
    int n_batch;        /* most tokens per step; default: the context's n_batch */
    int prefill_chunk;  /* most prompt tokens one step takes (shared by joining sequences); default 128 */
    const int32_t *eos; /* NULL: the model's */
    int n_eos;
    int prompt_cache;   /* reuse a free slot's keys and values for a prompt's start; default 1 */
} bn_batcher_params;

BN_EXTERN_C_BEGIN
BN_API bn_batcher_params bn_batcher_default_params(void);
BN_API bn_request_params bn_request_default_params(void);
BN_API bn_status bn_batcher_new(bn_batcher **out, bn_context *ctx, const bn_batcher_params *params, bn_error *err);
/* Frees the batcher; active requests end without callbacks. */
BN_API void bn_batcher_free(bn_batcher *b);
/* Queue a request: it joins at the next step. BN_ERR_CONTEXT_FULL when every
   slot is taken, BN_ERR_ARG when the prompt does not fit a slot. *id names it. */
BN_API bn_status bn_batcher_add(bn_batcher *b, const int32_t *prompt, int n_prompt, const bn_request_params *params,
                                int *id, bn_error *err);
/* End a request now (its closing call and on_done get BN_STOP_CANCELLED); 0 if id is not active. */
BN_API int bn_batcher_cancel(bn_batcher *b, int id);
/* One bn_forward call: one token for every decoding request plus a chunk of
   the prompts of joining ones. *n_active (may be NULL): requests still active. */
BN_API bn_status bn_batcher_step(bn_batcher *b, int *n_active, bn_error *err);
BN_API int bn_batcher_n_active(const bn_batcher *b);
BN_EXTERN_C_END

/* ---- the stop stream (no model needed) ---- */

/* The stop stream: text in (whole characters, as bn_utf8_stream gives them),
   text out, cut before the first stop string. A plain struct the caller owns. */
typedef struct bn_stop_stream {
    const char *const *stop; /* stop strings (not copied: keep them alive) */
    int n_stop;
    char *held;   /* text received but not yet emitted */
    size_t n_held, cap_held;
    char *out;    /* the text returned by the last push / flush */
    size_t cap_out;
    int stopped;  /* a stop string was seen: nothing more is emitted */
} bn_stop_stream;

BN_EXTERN_C_BEGIN
BN_API void bn_stop_stream_init(bn_stop_stream *ss, const char *const *stop, int n_stop);
BN_API void bn_stop_stream_free(bn_stop_stream *ss);
/* Append n bytes of text. *text / *len: what is now safe to show (valid until
   the next call). *stop_hit becomes 1 when a stop string is complete: the text
   before it is returned and the stop string is not; later pushes return nothing. */
BN_API bn_status bn_stop_stream_push(bn_stop_stream *ss, const char *bytes, size_t n, const char **text, size_t *len,
                                     int *stop_hit, bn_error *err);
/* The text ended: return everything still held (nothing after a stop string). */
BN_API void bn_stop_stream_flush(bn_stop_stream *ss, const char **text, size_t *len);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

/* ---- the stop stream ---- */

BN_API void bn_stop_stream_init(bn_stop_stream *ss, const char *const *stop, int n_stop) {
    memset(ss, 0, sizeof *ss);
    ss->stop = stop;
    ss->n_stop = stop ? n_stop : 0;
}

BN_API void bn_stop_stream_free(bn_stop_stream *ss) {
    BN_FREE(ss->held);
    BN_FREE(ss->out);
    memset(ss, 0, sizeof *ss);
}

static int bn__grow(char **buf, size_t *cap, size_t need) {
    char *p;
    size_t c = *cap ? *cap : 64;
    if (need <= *cap) return 1;
    while (c < need) c *= 2;
    p = (char *)BN_REALLOC(*buf, c);
    if (!p) return 0;
    *buf = p;
    *cap = c;
    return 1;
}

/* The stop strings that can match, one at a time: *k is the position in the
   list to look from (start at 0). A NULL or empty entry is skipped here, in
   the one place every use of the list goes through: an empty string never
   ends generation and never holds text back. */
static int bn__next_stop(const bn_stop_stream *ss, int *k, const char **stop, size_t *len) {
    for (; *k < ss->n_stop; (*k)++) {
        const char *s = ss->stop[*k];
        if (s && s[0]) {
            *stop = s;
            *len = strlen(s);
            (*k)++;
            return 1;
        }
    }
    return 0;
}

/* Earliest position where a stop string occurs in s[0..n); -1 if none. */
static long bn__find_stop(const bn_stop_stream *ss, const char *s, size_t n) {
    long best = -1;
    int k = 0;
    const char *stop;
    size_t m, i;
    while (bn__next_stop(ss, &k, &stop, &m)) {
        for (i = 0; i + m <= n && (best < 0 || (long)i < best); i++) {
            if (memcmp(s + i, stop, m) == 0) {
                best = (long)i;
                break;
            }
        }
    }
    return best;
}

/* Length of the longest tail of s[0..n) that is the start of some stop string
   (it may still grow into one, so it must not be shown yet). */
static size_t bn__stop_prefix_tail(const bn_stop_stream *ss, const char *s, size_t n) {
    size_t best = 0, m, t;
    int k = 0;
    const char *stop;
    while (bn__next_stop(ss, &k, &stop, &m))
        for (t = BN_MIN(m - 1, n); t > best; t--) /* m >= 1 */
            if (memcmp(s + n - t, stop, t) == 0) {
                best = t;
                break;
            }
    return best;
}

/* Move the first n held bytes to ss->out. */
static bn_status bn__emit(bn_stop_stream *ss, size_t n, const char **text, size_t *len, bn_error *err) {
    if (!bn__grow(&ss->out, &ss->cap_out, n + 1)) return bn_errorf(err, BN_ERR_NOMEM, "stop stream: out of memory");
    memcpy(ss->out, ss->held, n);
    ss->out[n] = 0;
    memmove(ss->held, ss->held + n, ss->n_held - n);
    ss->n_held -= n;
    *text = ss->out;
    *len = n;
    return BN_OK;
}

/* Append bytes; emit up to the first stop string (then stop), or, when `last`,
   everything, else all but a tail that may begin a stop string. */
static bn_status bn__stop_stream_add(bn_stop_stream *ss, const char *bytes, size_t n, int last, const char **text,
                                     size_t *len, int *stop_hit, bn_error *err) {
    long at;
    *text = "";
    *len = 0;
    *stop_hit = ss->stopped;
    if (ss->stopped) return BN_OK;
    if (!bn__grow(&ss->held, &ss->cap_held, ss->n_held + n + 1))
        return bn_errorf(err, BN_ERR_NOMEM, "stop stream: out of memory");
    if (n) memcpy(ss->held + ss->n_held, bytes, n);
    ss->n_held += n;
    at = bn__find_stop(ss, ss->held, ss->n_held);
    if (at >= 0) {
        ss->stopped = 1;
        *stop_hit = 1;
        ss->n_held = (size_t)at; /* the stop string and what follows it are dropped */
        return bn__emit(ss, (size_t)at, text, len, err);
    }
    return bn__emit(ss, last ? ss->n_held : ss->n_held - bn__stop_prefix_tail(ss, ss->held, ss->n_held), text, len,
                    err);
}

BN_API bn_status bn_stop_stream_push(bn_stop_stream *ss, const char *bytes, size_t n, const char **text, size_t *len,
                                     int *stop_hit, bn_error *err) {
    return bn__stop_stream_add(ss, bytes, n, 0, text, len, stop_hit, err);
}

BN_API void bn_stop_stream_flush(bn_stop_stream *ss, const char **text, size_t *len) {
    int stop_hit;
    if (bn__stop_stream_add(ss, NULL, 0, 1, text, len, &stop_hit, NULL) != BN_OK) {
        *text = ss->held; /* out of memory: hand out the held buffer as it is */
        *len = ss->n_held;
        ss->n_held = 0;
    }
}

/* ---- the output path: ids -> finished text, and the end tokens ---- */

/* What one generation (bn_generate, or a batcher request) needs to turn its
   sampled ids into the text its callback gets, and to know its end tokens. */
typedef struct bn__textout {
    const bn_tokenizer *tok; /* NULL: no text */
    bn_utf8_stream utf8;     /* ids -> whole characters */
    bn_stop_stream stops;    /* whole characters -> the text before a stop string */
    const int32_t *eos;      /* the end tokens: the caller's, or eos_buf */
    int n_eos;
    int32_t eos_buf[BN_MAX_EOS + 1];
} bn__textout;

static int bn__is_eos(int32_t token, const int32_t *eos, int n_eos) {
    int i;
    for (i = 0; i < n_eos; i++)
        if (eos[i] == token) return 1;
    return 0;
}

/* The end tokens: the caller's list if given, else the model's (config.json
   and generation_config.json) and the tokenizer's eos_token (when tok). */
static int bn__default_eos(const bn_context *ctx, const bn_tokenizer *tok, const int32_t *eos, int n_eos,
                           int32_t *buf, const int32_t **out) {
    const bn_config *cfg = bn_model_config(bn_context_model(ctx));
    int n = 0, i;
    if (eos) {
        *out = eos;
        return n_eos;
    }
    for (i = 0; i < cfg->n_eos && i < BN_MAX_EOS; i++) buf[n++] = cfg->eos_token_ids[i];
    if (tok && bn_tokenizer_eos_id(tok) >= 0 && !bn__is_eos(bn_tokenizer_eos_id(tok), buf, n))
        buf[n++] = bn_tokenizer_eos_id(tok);
    *out = buf;
    return n;
}

/* Set up o in place (it points into itself). stop strings need tok. */
static void bn__textout_init(bn__textout *o, const bn_context *ctx, const bn_tokenizer *tok, unsigned flags,
                             const char *const *stop, int n_stop, const int32_t *eos, int n_eos) {
    memset(o, 0, sizeof *o);
    o->tok = tok;
    if (tok) bn_utf8_stream_init(&o->utf8, tok, flags);
    bn_stop_stream_init(&o->stops, tok ? stop : NULL, tok ? n_stop : 0);
    o->n_eos = bn__default_eos(ctx, tok, eos, n_eos, o->eos_buf, &o->eos);
}

static void bn__textout_free(bn__textout *o) {
    if (o->tok) bn_utf8_stream_free(&o->utf8);
    bn_stop_stream_free(&o->stops);
}

/* A sampled token's finished text (none for an end token, or an id the
   tokenizer does not have); *stop_hit when it completed a stop string. */
static bn_status bn__textout_push(bn__textout *o, int32_t token, int is_eos, const char **text, size_t *len,
                                  int *stop_hit, bn_error *err) {
    const char *piece;
    size_t n = 0;
    bn_status st;
    *text = "";
    *len = 0;
    *stop_hit = 0;
    if (!o->tok || is_eos || token < 0 || token >= bn_tokenizer_vocab_size(o->tok)) return BN_OK;
    st = bn_utf8_stream_push(&o->utf8, token, &piece, &n, err);
    if (!st && n) st = bn_stop_stream_push(&o->stops, piece, n, text, len, stop_hit, err);
    return st;
}

/* The end: everything still held back (an incomplete character as U+FFFD),
   nothing after a stop string. */
static bn_status bn__textout_finish(bn__textout *o, const char **text, size_t *len, bn_error *err) {
    const char *piece = "";
    size_t n = 0;
    int stop_hit;
    bn_status st = BN_OK;
    *text = "";
    *len = 0;
    if (!o->tok) return BN_OK;
    if (!o->stops.stopped) st = bn_utf8_stream_flush(&o->utf8, &piece, &n, err);
    return st ? st : bn__stop_stream_add(&o->stops, piece, n, 1, text, len, &stop_hit, err);
}

BN_API const char *bn_stop_reason_name(bn_stop_reason reason) {
    switch (reason) {
    case BN_STOP_NONE: return "none";
    case BN_STOP_EOS: return "eos";
    case BN_STOP_STRING: return "stop string";
    case BN_STOP_MAX_TOKENS: return "max tokens";
    case BN_STOP_CONTEXT_FULL: return "context full";
    case BN_STOP_CANCELLED: return "cancelled";
    case BN_STOP_ERROR: return "error";
    case BN_STOP_GRAMMAR: return "grammar complete";
    }
    return "unknown";
}

BN_API bn_generate_params bn_generate_default_params(void) {
    bn_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_new_tokens = -1;
    p.decode_flags = BN_TOK_SKIP_SPECIAL;
    return p;
}

BN_API bn_beam_params bn_beam_default_params(void) {
    bn_beam_params p;
    memset(&p, 0, sizeof p);
    p.n_beams = 4;
    p.max_new_tokens = 32;
    p.length_penalty = 1.0f;
    p.early_stopping = 1;
    return p;
}

BN_API void bn_beam_result_free(bn_beam_result *r) {
    int i;
    if (!r) return;
    for (i = 0; i < r->n; i++) BN_FREE(r->hyps[i].tokens);
    BN_FREE(r->hyps);
    r->hyps = NULL;
    r->n = 0;
}

/* ---- bn_generate ---- */

/* State of one bn_generate call, so that each step is a small function. */
typedef struct bn__gen {
    bn_context *ctx;
    int seq;
    bn_sampler *sampler;
    const bn_generate_params *p;
    bn__textout out;
    bn_generate_result r;
} bn__gen;

/* Hand a sampled token (and its text) to the callback; set r.reason when it ends generation. */
static bn_status bn__gen_token(bn__gen *g, int32_t token, const float *logits, bn_error *err) {
    bn_token_event ev;
    int is_eos = !g->p->ignore_eos && bn__is_eos(token, g->out.eos, g->out.n_eos), stop_hit;
    bn_status st = bn__textout_push(&g->out, token, is_eos, &ev.text, &ev.len, &stop_hit, err);
    if (st) return st;
    if (stop_hit) g->r.reason = BN_STOP_STRING;
    if (g->p->on_token) {
        ev.id = 0;
        ev.token = token;
        ev.index = g->r.n_generated - 1;
        ev.logits = logits;
        ev.n_vocab = bn_model_config(bn_context_model(g->ctx))->vocab_size;
        ev.end_token = is_eos;
        ev.reason = BN_STOP_NONE;
        if (g->p->on_token(g->p->user, &ev) && !g->r.reason) g->r.reason = BN_STOP_CANCELLED;
    }
    if (is_eos && !g->r.reason) g->r.reason = BN_STOP_EOS;
    return BN_OK;
}

/* The closing call: the held-back tail and the reason. */
static bn_status bn__gen_close(bn__gen *g, bn_error *err) {
    bn_token_event ev;
    bn_status st = bn__textout_finish(&g->out, &ev.text, &ev.len, err);
    if (st || !g->p->on_token) return st;
    ev.id = 0;
    ev.token = -1;
    ev.index = g->r.n_generated;
    ev.logits = NULL;
    ev.n_vocab = bn_model_config(bn_context_model(g->ctx))->vocab_size;
    ev.end_token = 0;
    ev.reason = g->r.reason;
    g->p->on_token(g->p->user, &ev);
    return BN_OK;
}

/* Sample and decode until a stop condition sets g->r.reason. */
static bn_status bn__gen_loop(bn__gen *g, int32_t *out, int max_out, bn_error *err) {
    int32_t token = -1;
    bn_status st = BN_OK;
    while (!st && !g->r.reason) {
        const float *logits;
        if (g->p->max_new_tokens >= 0 && g->r.n_generated >= g->p->max_new_tokens) {
            g->r.reason = BN_STOP_MAX_TOKENS;
            break;
        }
        if (g->r.n_generated > 0) { /* the previous token goes in only now: the last one never needs to */
            if (bn_seq_len(g->ctx, g->seq) >= bn_context_get_params(g->ctx)->n_ctx) {
                g->r.reason = BN_STOP_CONTEXT_FULL;
                break;
            }
            st = bn_eval(g->ctx, g->seq, &token, 1, err);
            if (st) break;
        }
        logits = bn_get_logits(g->ctx, -1);
        if (!logits) return bn_errorf(err, BN_ERR_ARG, "generate: the last forward produced no logits");
        token = bn_sampler_sample(g->sampler, logits);
        if (token < 0) {
            g->r.reason = BN_STOP_GRAMMAR;
            break;
        }
        bn_sampler_accept(g->sampler, token);
        if (out && g->r.n_generated < max_out) out[g->r.n_generated] = token;
        g->r.n_generated++;
        st = bn__gen_token(g, token, logits, err);
    }
    return st;
}

BN_API bn_status bn_generate(bn_context *ctx, int seq, bn_sampler *sampler, const int32_t *prompt, int n_prompt,
                             const bn_generate_params *params, int32_t *out, int max_out, bn_generate_result *res,
                             bn_error *err) {
    bn_generate_params defaults = bn_generate_default_params();
    bn__gen g;
    bn_status st;
    double t0 = bn_time_s();
    int i;
    memset(&g, 0, sizeof g);
    if (res) memset(res, 0, sizeof *res);
    if (n_prompt <= 0 || !prompt)
        return bn_errorf(err, BN_ERR_ARG, "generate: needs at least one prompt token (to continue a sequence, pass "
                                          "the last token sampled: it is not in the cache yet)");
    g.ctx = ctx;
    g.seq = seq;
    g.sampler = sampler;
    g.p = params ? params : &defaults;
    bn__textout_init(&g.out, ctx, g.p->tokenizer, g.p->decode_flags, g.p->stop, g.p->n_stop, g.p->eos, g.p->n_eos);
    for (i = 0; i < n_prompt; i++) bn_sampler_accept_prompt(sampler, prompt[i]);
    st = bn_eval(ctx, seq, prompt, n_prompt, err);
    g.r.n_prompt = st ? 0 : n_prompt;
    g.r.prompt_s = bn_time_s() - t0;
    t0 = bn_time_s();
    if (!st) st = bn__gen_loop(&g, out, max_out, err);
    if (!st) st = bn__gen_close(&g, err);
    bn__textout_free(&g.out);
    g.r.gen_s = bn_time_s() - t0;
    if (res) *res = g.r;
    return st;
}

/* ---- scoring a window ---- */

/* log p(next) from a row of logits: its logit minus their log-sum-exp. */
static double bn__logprob(const float *logits, int n_vocab, int32_t next) {
    double max = logits[0], sum = 0.0;
    int i;
    for (i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    for (i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    return (double)logits[next] - max - log(sum);
}

BN_API bn_status bn_score(bn_context *ctx, int seq, const int32_t *tokens, int n, double *logprob, bn_error *err) {
    int n_batch = bn_context_get_params(ctx)->n_batch, n_vocab = bn_model_config(bn_context_model(ctx))->vocab_size;
    int done = 0, i;
    int32_t *pos = BN_ALLOC(int32_t, n_batch), *seqs = BN_ALLOC(int32_t, n_batch);
    int8_t *want = BN_ALLOC(int8_t, n_batch);
    bn_status st = BN_OK;
    if (!pos || !seqs || !want) st = bn_errorf(err, BN_ERR_NOMEM, "score: out of memory");
    if (!st && (seq < 0 || seq >= bn_context_get_params(ctx)->n_seq))
        st = bn_errorf(err, BN_ERR_ARG, "score: sequence %d is not in the context (it has %d)", seq,
                       bn_context_get_params(ctx)->n_seq);
    for (i = 0; !st && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            st = bn_errorf(err, BN_ERR_ARG, "score: token %d (at %d) is outside the vocabulary of %d", (int)tokens[i],
                           i, n_vocab);
    while (!st && done < n) {
        bn_batch b;
        int chunk = BN_MIN(n - done, n_batch), start = bn_seq_len(ctx, seq);
        for (i = 0; i < chunk; i++) {
            pos[i] = start + i;
            seqs[i] = seq;
            want[i] = 1;
        }
        memset(&b, 0, sizeof b);
        b.n_tokens = chunk;
        b.token = tokens + done;
        b.pos = pos;
        b.seq = seqs;
        b.want_logits = want;
        st = bn_forward(ctx, &b, err);
        for (i = 0; !st && i < chunk && done + i + 1 < n; i++)
            logprob[done + i] = bn__logprob(bn_get_logits(ctx, i), n_vocab, tokens[done + i + 1]);
        done += chunk;
    }
    BN_FREE(pos);
    BN_FREE(seqs);
    BN_FREE(want);
    return st;
}

/* ---- beam search ---- */

typedef struct bn__beam {
    int slot;        /* KV slot holding the prompt and tokens[0..n-1) (the last token goes in next step) */
    int32_t *tokens; /* generated so far */
    int n;
    double sum;      /* sum of log-probabilities of tokens */
} bn__beam;

typedef struct bn__beam_cand {
    int beam;
    int32_t token;
    double sum;      /* the beam's sum plus log p(token) */
} bn__beam_cand;

/* Best first; ties by beam, then token, so that the order is fully defined. */
static int bn__beam_cand_cmp(const void *a, const void *b) {
    const bn__beam_cand *x = (const bn__beam_cand *)a, *y = (const bn__beam_cand *)b;
    if (x->sum != y->sum) return x->sum > y->sum ? -1 : 1;
    if (x->beam != y->beam) return x->beam < y->beam ? -1 : 1;
    return (x->token > y->token) - (x->token < y->token);
}

typedef struct bn__beam_state {
    bn_context *ctx;
    const bn_beam_params *p;
    const int32_t *eos;
    int32_t eos_buf[BN_MAX_EOS + 1];
    int n_eos, n_vocab, n_beams, first_seq;
    bn__beam *beams, *next;
    int n_live;
    bn_candidates cands;
    bn__beam_cand *pool;  /* n_beams * 2 * n_beams */
    int n_pool;
    bn_beam_hyp *done;    /* the n_beams best finished hypotheses so far */
    int n_done;
    int32_t *b_tok, *b_pos, *b_seq;
    int8_t *b_want;
} bn__beam_state;

static double bn__beam_score(const bn_beam_params *p, double sum, int len) {
    return sum / pow((double)(len > 0 ? len : 1), (double)p->length_penalty);
}

/* Keep a finished hypothesis if there is room or it beats the worst kept one. */
static bn_status bn__beam_add_done(bn__beam_state *s, const int32_t *tokens, int n, double sum, bn_error *err) {
    double score = bn__beam_score(s->p, sum, n);
    int i, slot = s->n_done;
    if (s->n_done == s->n_beams) {
        slot = 0;
        for (i = 1; i < s->n_done; i++)
            if (s->done[i].score < s->done[slot].score) slot = i;
        if (score <= s->done[slot].score) return BN_OK;
        BN_FREE(s->done[slot].tokens);
    } else {
        s->n_done++;
    }
    s->done[slot].tokens = BN_ALLOC(int32_t, n > 0 ? n : 1);
    if (!s->done[slot].tokens) {
        s->done[slot].n_tokens = 0;
        return bn_errorf(err, BN_ERR_NOMEM, "beam search: out of memory");
    }
    memcpy(s->done[slot].tokens, tokens, sizeof(int32_t) * (size_t)n);
    s->done[slot].n_tokens = n;
    s->done[slot].ended = n > 0 && bn__is_eos(tokens[n - 1], s->eos, s->n_eos);
    s->done[slot].sum_logprob = (float)sum;
    s->done[slot].score = (float)score;
    return BN_OK;
}

/* For every live beam: its 2*n_beams best next tokens by log-probability. */
static void bn__beam_expand(bn__beam_state *s, const float *const *logits) {
    int b, i, k = 2 * s->n_beams;
    s->n_pool = 0;
    for (b = 0; b < s->n_live; b++) {
        bn_candidates *c = &s->cands;
        double max, sum = 0.0, lse;
        bn_candidates_init(c, logits[b], s->n_vocab);
        bn_sample_logit_bias(c, s->p->logit_bias, s->p->n_logit_bias);
        max = c->data[bn_sample_argmax(c)].logit;
        for (i = 0; i < c->n; i++) sum += exp((double)c->data[i].logit - max);
        lse = max + log(sum);
        bn_sample_top_k(c, k);
        for (i = 0; i < c->n; i++) {
            bn__beam_cand *pc = &s->pool[s->n_pool++];
            pc->beam = b;
            pc->token = c->data[i].id;
            pc->sum = s->beams[b].sum + ((double)c->data[i].logit - lse);
        }
    }
    qsort(s->pool, (size_t)s->n_pool, sizeof *s->pool, bn__beam_cand_cmp);
}

/* Walk the best candidates: EOS ones become finished hypotheses (if they rank
   among the first n_beams, as in HF), the others the next live beams. */
static bn_status bn__beam_select(bn__beam_state *s, int *n_next, bn_error *err) {
    int r, n = 0, k = 2 * s->n_beams;
    for (r = 0; r < s->n_pool && r < k && n < s->n_beams; r++) {
        const bn__beam_cand *c = &s->pool[r];
        bn__beam *parent = &s->beams[c->beam];
        if (!(c->sum > -1e300)) break; /* banned tokens (-inf) never make a beam */
        if (bn__is_eos(c->token, s->eos, s->n_eos)) {
            bn_status st;
            if (r >= s->n_beams) continue;
            parent->tokens[parent->n] = c->token; /* room: tokens hold max_new_tokens */
            st = bn__beam_add_done(s, parent->tokens, parent->n + 1, c->sum, err);
            if (st) return st;
            continue;
        }
        memcpy(s->next[n].tokens, parent->tokens, sizeof(int32_t) * (size_t)parent->n);
        s->next[n].tokens[parent->n] = c->token;
        s->next[n].n = parent->n + 1;
        s->next[n].sum = c->sum;
        s->next[n].slot = c->beam; /* parent index for now; bn__beam_assign_slots maps it */
        n++;
    }
    *n_next = n;
    return BN_OK;
}

static int bn__beam_is_done(const bn__beam_state *s, int n_next, int cur_len) {
    double worst;
    int i;
    if (n_next == 0) return 1;
    if (s->n_done < s->n_beams) return 0;
    if (s->p->early_stopping) return 1;
    worst = s->done[0].score;
    for (i = 1; i < s->n_done; i++)
        if (s->done[i].score < worst) worst = s->done[i].score;
    /* HF's heuristic: the best live beam, scored at the current length */
    return worst >= bn__beam_score(s->p, s->next[0].sum, cur_len);
}

/* Give each next beam a KV slot: a parent's first child keeps the parent's
   slot; further children get a copy of the parent in a slot whose beam died. */
static bn_status bn__beam_assign_slots(bn__beam_state *s, int n_next, bn_error *err) {
    int used[64], taken[64], j, f;
    for (j = 0; j < s->n_beams; j++) used[j] = taken[j] = 0;
    for (j = 0; j < n_next; j++) {
        int parent = s->next[j].slot;
        if (!taken[parent]) {
            taken[parent] = 1;
            s->next[j].slot = s->beams[parent].slot;
            used[s->next[j].slot - s->first_seq] = 1;
        } else {
            s->next[j].slot = -1 - parent;
        }
    }
    for (j = 0; j < n_next; j++) {
        int parent;
        bn_status st;
        if (s->next[j].slot >= 0) continue;
        parent = -1 - s->next[j].slot;
        for (f = 0; used[f]; f++) {
        }
        used[f] = 1;
        s->next[j].slot = s->first_seq + f;
        st = bn_seq_copy(s->ctx, s->beams[parent].slot, s->next[j].slot, err);
        if (st) return st;
    }
    return BN_OK;
}

/* Run the last token of every live beam through the model in one batch. */
static bn_status bn__beam_decode(bn__beam_state *s, const float **logits, int *full, bn_error *err) {
    bn_batch batch;
    bn_status st;
    int j;
    for (j = 0; j < s->n_live; j++) {
        const bn__beam *b = &s->beams[j];
        if (bn_seq_len(s->ctx, b->slot) >= bn_context_get_params(s->ctx)->n_ctx) {
            *full = 1;
            return BN_OK;
        }
        s->b_tok[j] = b->tokens[b->n - 1];
        s->b_pos[j] = bn_seq_len(s->ctx, b->slot);
        s->b_seq[j] = b->slot;
        s->b_want[j] = 1;
    }
    memset(&batch, 0, sizeof batch);
    batch.n_tokens = s->n_live;
    batch.token = s->b_tok;
    batch.pos = s->b_pos;
    batch.seq = s->b_seq;
    batch.want_logits = s->b_want;
    st = bn_forward(s->ctx, &batch, err);
    for (j = 0; !st && j < s->n_live; j++) logits[j] = bn_get_logits(s->ctx, j);
    return st;
}

static void bn__beam_state_free(bn__beam_state *s) {
    int i;
    if (s->beams)
        for (i = 0; i < s->n_beams; i++) BN_FREE(s->beams[i].tokens);
    if (s->next)
        for (i = 0; i < s->n_beams; i++) BN_FREE(s->next[i].tokens);
    BN_FREE(s->beams);
    BN_FREE(s->next);
    BN_FREE(s->cands.data);
    BN_FREE(s->pool);
    BN_FREE(s->b_tok);
    BN_FREE(s->b_pos);
    BN_FREE(s->b_seq);
    BN_FREE(s->b_want);
}

static bn_status bn__beam_state_alloc(bn__beam_state *s, int max_new, bn_error *err) {
    int i, n = s->n_beams, ok = 1;
    s->beams = BN_ZALLOC(bn__beam, n);
    s->next = BN_ZALLOC(bn__beam, n);
    s->cands.data = BN_ALLOC(bn_candidate, s->n_vocab);
    s->pool = BN_ALLOC(bn__beam_cand, 2 * n * n);
    s->done = BN_ZALLOC(bn_beam_hyp, n);
    s->b_tok = BN_ALLOC(int32_t, n);
    s->b_pos = BN_ALLOC(int32_t, n);
    s->b_seq = BN_ALLOC(int32_t, n);
    s->b_want = BN_ALLOC(int8_t, n);
    ok = s->beams && s->next && s->cands.data && s->pool && s->done && s->b_tok && s->b_pos && s->b_seq && s->b_want;
    for (i = 0; ok && i < n; i++) {
        s->beams[i].tokens = BN_ALLOC(int32_t, max_new + 1);
        s->next[i].tokens = BN_ALLOC(int32_t, max_new + 1);
        ok = s->beams[i].tokens && s->next[i].tokens;
    }
    return ok ? BN_OK : bn_errorf(err, BN_ERR_NOMEM, "beam search: out of memory for %d beams", n);
}

static int bn__hyp_cmp(const void *a, const void *b) {
    const bn_beam_hyp *x = (const bn_beam_hyp *)a, *y = (const bn_beam_hyp *)b;
    return (x->score < y->score) - (x->score > y->score);
}

/* The search itself, with s allocated and the prompt evaluated. */
static bn_status bn__beam_run(bn__beam_state *s, bn_error *err) {
    const float *logits[64];
    int step, max_new = s->p->max_new_tokens, finished = 0, full = 0;
    bn_status st = BN_OK;
    logits[0] = bn_get_logits(s->ctx, -1);
    s->beams[0].slot = s->first_seq;
    s->beams[0].n = 0;
    s->beams[0].sum = 0.0;
    s->n_live = 1;
    for (step = 0; step < max_new && !finished && !full; step++) {
        int n_next;
        bn__beam *tmp;
        bn__beam_expand(s, logits);
        st = bn__beam_select(s, &n_next, err);
        if (st) return st;
        finished = bn__beam_is_done(s, n_next, step + 1);
        if (!finished && step + 1 < max_new) st = bn__beam_assign_slots(s, n_next, err);
        if (st) return st;
        tmp = s->beams;
        s->beams = s->next;
        s->next = tmp;
        s->n_live = n_next;
        if (!finished && step + 1 < max_new) st = bn__beam_decode(s, logits, &full, err);
        if (st) return st;
    }
    if (!finished) { /* out of length: the live beams count as they are */
        int j;
        for (j = 0; j < s->n_live && !st; j++)
            st = bn__beam_add_done(s, s->beams[j].tokens, s->beams[j].n, s->beams[j].sum, err);
    }
    return st;
}

BN_API bn_status bn_beam_search(bn_context *ctx, int first_seq, const int32_t *prompt, int n_prompt,
                                const bn_beam_params *params, bn_beam_result *r, bn_error *err) {
    bn_beam_params defaults = bn_beam_default_params();
    bn__beam_state s;
    bn_status st;
    int i;
    memset(&s, 0, sizeof s);
    r->n = 0;
    r->hyps = NULL;
    s.ctx = ctx;
    s.p = params ? params : &defaults;
    s.n_beams = s.p->n_beams;
    s.first_seq = first_seq;
    s.n_vocab = bn_model_config(bn_context_model(ctx))->vocab_size;
    s.n_eos = bn__default_eos(ctx, s.p->tokenizer, s.p->eos, s.p->n_eos, s.eos_buf, &s.eos);
    if (s.n_beams < 1 || s.n_beams > 64)
        return bn_errorf(err, BN_ERR_ARG, "beam search: n_beams must be in 1..64 (got %d)", s.n_beams);
    if (first_seq < 0 || first_seq + s.n_beams > bn_context_get_params(ctx)->n_seq)
        return bn_errorf(err, BN_ERR_ARG,
                         "beam search: %d beams from slot %d need a context with at least %d sequences (it has %d)",
                         s.n_beams, first_seq, first_seq + s.n_beams, bn_context_get_params(ctx)->n_seq);
    if (n_prompt <= 0 || s.p->max_new_tokens <= 0)
        return bn_errorf(err, BN_ERR_ARG, "beam search: needs a prompt and max_new_tokens > 0");
    st = bn__beam_state_alloc(&s, s.p->max_new_tokens, err);
    if (!st) {
        for (i = 0; i < s.n_beams; i++) bn_seq_truncate(ctx, first_seq + i, 0);
        st = bn_eval(ctx, first_seq, prompt, n_prompt, err);
    }
    if (!st) st = bn__beam_run(&s, err);
    if (!st) {
        qsort(s.done, (size_t)s.n_done, sizeof *s.done, bn__hyp_cmp);
        r->hyps = s.done;
        r->n = s.n_done;
    } else {
        for (i = 0; s.done && i < s.n_done; i++) BN_FREE(s.done[i].tokens);
        BN_FREE(s.done);
    }
    bn__beam_state_free(&s);
    return st;
}

/* ---- the batcher: many sequences, one forward per step ---- */

typedef struct bn__request {
    int active;
    int closing;         /* in its closing callbacks: cancel leaves it alone */
    int id;
    int join_order;
    int32_t *prompt;
    int n_prompt, n_fed; /* prompt tokens, and how many are in the KV cache */
    int n_cached;        /* of those, how many an earlier request left there */
    int32_t last;        /* the token sampled last, fed at the next step */
    int has_last;
    int n_generated;
    double t_add, t_first; /* when it was added, when its first token was sampled */
    bn_sampler *sampler;
    char **stop;         /* the request's own copy of its stop strings (one allocation) */
    bn__textout out;
    bn_request_params p;
} bn__request;

struct bn_batcher {
    bn_context *ctx;
    bn_batcher_params p;
    int n_vocab, n_ctx;
    bn__request *req; /* one per slot: req[i] uses KV slot i */
    int next_id, joins;
    int32_t *b_tok, *b_pos, *b_seq;
    int8_t *b_want;
    int *b_owner;     /* slot of the request each batch token belongs to */
    int *b_rid;       /* and that request's id (a callback may end it and add another in its slot) */
    int32_t *b_token; /* the greedy draws made over the pool (bn__batch_greedy), -1 where none */
    unsigned *kv_used; /* when each slot was last given a request (a free slot is reused least recent first) */
    unsigned uses;
};

BN_API bn_batcher_params bn_batcher_default_params(void) {
    bn_batcher_params p;
    memset(&p, 0, sizeof p);
    p.prefill_chunk = 128;
    p.prompt_cache = 1;
    return p;
}

BN_API bn_request_params bn_request_default_params(void) {
    bn_request_params p;
    memset(&p, 0, sizeof p);
    p.sampler = bn_sampler_default_params();
    p.sampler.temperature = 0.0f;
    p.max_new_tokens = -1;
    p.decode_flags = BN_TOK_SKIP_SPECIAL;
    return p;
}

BN_API bn_status bn_batcher_new(bn_batcher **out, bn_context *ctx, const bn_batcher_params *params, bn_error *err) {
    bn_batcher *b;
    bn_batcher_params p = params ? *params : bn_batcher_default_params();
    int nb;
    *out = NULL;
    if (p.n_slots <= 0) p.n_slots = bn_context_get_params(ctx)->n_seq;
    if (p.n_batch <= 0) p.n_batch = bn_context_get_params(ctx)->n_batch;
    if (p.prefill_chunk <= 0) p.prefill_chunk = 128;
    if (p.n_slots > bn_context_get_params(ctx)->n_seq)
        return bn_errorf(err, BN_ERR_ARG, "batcher: %d slots but the context holds %d sequences (raise n_seq)",
                         p.n_slots, bn_context_get_params(ctx)->n_seq);
    if (p.n_batch > bn_context_get_params(ctx)->n_batch || p.n_batch < p.n_slots)
        return bn_errorf(err, BN_ERR_ARG, "batcher: n_batch %d must be in [n_slots %d, the context's n_batch %d]",
                         p.n_batch, p.n_slots, bn_context_get_params(ctx)->n_batch);
    b = BN_ZALLOC(bn_batcher, 1);
    if (!b) return bn_errorf(err, BN_ERR_NOMEM, "batcher: out of memory");
    b->ctx = ctx;
    b->p = p;
    b->n_vocab = bn_model_config(bn_context_model(ctx))->vocab_size;
    b->n_ctx = bn_context_get_params(ctx)->n_ctx;
    nb = p.n_batch;
    b->req = BN_ZALLOC(bn__request, p.n_slots);
    b->b_tok = BN_ALLOC(int32_t, nb);
    b->b_pos = BN_ALLOC(int32_t, nb);
    b->b_seq = BN_ALLOC(int32_t, nb);
    b->b_want = BN_ALLOC(int8_t, nb);
    b->b_owner = BN_ALLOC(int, nb);
    b->b_rid = BN_ALLOC(int, nb);
    b->b_token = BN_ALLOC(int32_t, nb);
    b->kv_used = BN_ZALLOC(unsigned, p.n_slots);
    if (!b->req || !b->b_tok || !b->b_pos || !b->b_seq || !b->b_want || !b->b_owner || !b->b_rid || !b->b_token ||
        !b->kv_used) {
        bn_batcher_free(b);
        return bn_errorf(err, BN_ERR_NOMEM, "batcher: out of memory");
    }
    *out = b;
    return BN_OK;
}

/* Free what a request holds and empty its slot (no callbacks). What its
   tokens left in the KV cache stays for the next request (the prompt cache). */
static void bn__request_clear(bn_batcher *b, int slot) {
    bn__request *r = &b->req[slot];
    bn_sampler_free(r->sampler);
    bn__textout_free(&r->out);
    BN_FREE(r->stop);
    BN_FREE(r->prompt);
    memset(r, 0, sizeof *r);
    if (!b->p.prompt_cache) bn_seq_truncate(b->ctx, slot, 0);
}

/* End a request: its closing on_token (the held-back tail), then, with the
   slot free again, on_done. */
static void bn__request_finish(bn_batcher *b, int slot, bn_stop_reason reason) {
    bn__request *r = &b->req[slot];
    bn_request_params p = r->p;
    bn_generate_result res;
    bn_token_event ev;
    double now = bn_time_s();
    int id = r->id;
    r->closing = 1;
    if (bn__textout_finish(&r->out, &ev.text, &ev.len, NULL) != BN_OK) {
        ev.text = "";
        ev.len = 0;
        reason = BN_STOP_ERROR;
    }
    memset(&res, 0, sizeof res);
    res.reason = reason;
    res.n_prompt = r->n_prompt;
    res.n_cached = r->n_cached;
    res.n_generated = r->n_generated;
    res.prompt_s = (r->n_generated ? r->t_first : now) - r->t_add;
    res.gen_s = r->n_generated ? now - r->t_first : 0.0;
    if (p.on_token) {
        ev.id = id;
        ev.token = -1;
        ev.index = r->n_generated;
        ev.logits = NULL;
        ev.n_vocab = b->n_vocab;
        ev.end_token = 0;
        ev.reason = reason;
        p.on_token(p.user, &ev);
    }
    bn__request_clear(b, slot);
    if (p.on_done) p.on_done(p.user, id, &res);
}

BN_API void bn_batcher_free(bn_batcher *b) {
    int i;
    if (!b) return;
    for (i = 0; b->req && i < b->p.n_slots; i++)
        if (b->req[i].active) bn__request_clear(b, i);
    BN_FREE(b->req);
    BN_FREE(b->b_tok);
    BN_FREE(b->b_pos);
    BN_FREE(b->b_seq);
    BN_FREE(b->b_want);
    BN_FREE(b->b_owner);
    BN_FREE(b->b_rid);
    BN_FREE(b->b_token);
    BN_FREE(b->kv_used);
    BN_FREE(b);
}

BN_API int bn_batcher_n_active(const bn_batcher *b) {
    int i, n = 0;
    for (i = 0; i < b->p.n_slots; i++) n += b->req[i].active;
    return n;
}

/* A copy of n stop strings in one allocation: the pointers, then the bytes
   (a NULL entry becomes "", which never matches). */
static char **bn__copy_strings(const char *const *s, int n) {
    size_t bytes = sizeof(char *) * (size_t)n;
    char **out, *at;
    int i;
    for (i = 0; i < n; i++) bytes += (s[i] ? strlen(s[i]) : 0) + 1;
    out = (char **)BN_MALLOC(bytes ? bytes : 1);
    if (!out) return NULL;
    at = (char *)(out + n);
    for (i = 0; i < n; i++) {
        size_t len = (s[i] ? strlen(s[i]) : 0) + 1;
        memcpy(at, s[i] ? s[i] : "", len);
        out[i] = at;
        at += len;
    }
    return out;
}

static int bn__common_start(const int32_t *a, int na, const int32_t *b, int nb) {
    int i, n = BN_MIN(na, nb);
    for (i = 0; i < n && a[i] == b[i]; i++) {
    }
    return i;
}

/* The free slot for a prompt: the one whose cached tokens share the longest
   start with it, else the one used least recently (its cache is the least
   likely to be asked for again). *reuse: the positions to keep, at most
   n_prompt - 1, since the last prompt token must run to give logits. -1 when
   every slot is busy. */
static int bn__pick_slot(bn_batcher *b, const int32_t *prompt, int n_prompt, int *reuse) {
    int i, best = -1, best_len = -1;
    for (i = 0; i < b->p.n_slots; i++) {
        int n_held, len;
        const int32_t *held;
        if (b->req[i].active) continue;
        held = bn_seq_tokens(b->ctx, i, &n_held); /* what the slot's KV cache holds */
        len = bn__common_start(held, n_held, prompt, n_prompt);
        if (len > best_len || (len == best_len && b->kv_used[i] < b->kv_used[best])) {
            best = i;
            best_len = len;
        }
    }
    *reuse = best < 0 ? 0 : BN_MIN(best_len, n_prompt - 1);
    return best;
}

BN_API bn_status bn_batcher_add(bn_batcher *b, const int32_t *prompt, int n_prompt, const bn_request_params *params,
                                int *id, bn_error *err) {
    bn_request_params dp = bn_request_default_params();
    bn__request *r;
    bn_status st;
    int slot, i, n_stop, reuse;
    if (id) *id = -1;
    if (n_prompt <= 0 || n_prompt >= b->n_ctx)
        return bn_errorf(err, BN_ERR_ARG, "batcher: a prompt of %d tokens does not fit a context of %d", n_prompt,
                         b->n_ctx);
    slot = bn__pick_slot(b, prompt, n_prompt, &reuse);
    if (slot < 0)
        return bn_errorf(err, BN_ERR_CONTEXT_FULL,
                         "batcher: all %d sequence slots are busy; wait for one to finish or create the context with a "
                         "larger n_seq", b->p.n_slots);
    r = &b->req[slot];
    memset(r, 0, sizeof *r);
    r->p = params ? *params : dp;
    n_stop = r->p.stop && r->p.tokenizer && r->p.n_stop > 0 ? r->p.n_stop : 0;
    st = bn_sampler_new(&r->sampler, &r->p.sampler, b->n_vocab, err);
    if (st) return st;
    r->prompt = BN_ALLOC(int32_t, n_prompt);
    r->stop = bn__copy_strings(r->p.stop, n_stop);
    if (!r->prompt || !r->stop) {
        bn_sampler_free(r->sampler);
        BN_FREE(r->prompt);
        BN_FREE(r->stop);
        memset(r, 0, sizeof *r);
        return bn_errorf(err, BN_ERR_NOMEM, "batcher: out of memory for a prompt of %d tokens", n_prompt);
    }
    r->p.stop = (const char *const *)r->stop;
    bn__textout_init(&r->out, b->ctx, r->p.tokenizer, r->p.decode_flags, r->p.stop, n_stop, b->p.eos, b->p.n_eos);
    memcpy(r->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    for (i = 0; i < n_prompt; i++) bn_sampler_accept_prompt(r->sampler, prompt[i]);
    r->n_prompt = n_prompt;
    r->id = b->next_id++;
    r->join_order = b->joins++;
    r->t_add = bn_time_s();
    r->active = 1;
    r->n_fed = r->n_cached = reuse;
    b->kv_used[slot] = ++b->uses;
    bn_seq_truncate(b->ctx, slot, reuse);
    if (id) *id = r->id;
    return BN_OK;
}

BN_API int bn_batcher_cancel(bn_batcher *b, int id) {
    int i;
    for (i = 0; i < b->p.n_slots; i++)
        if (b->req[i].active && !b->req[i].closing && b->req[i].id == id) {
            bn__request_finish(b, i, BN_STOP_CANCELLED);
            return 1;
        }
    return 0;
}

static void bn__batch_push(bn_batcher *b, int *n, int slot, int32_t token, int pos, int want) {
    b->b_tok[*n] = token;
    b->b_pos[*n] = pos;
    b->b_seq[*n] = slot;
    b->b_want[*n] = (int8_t)want;
    b->b_owner[*n] = slot;
    b->b_rid[*n] = b->req[slot].id;
    (*n)++;
}

/* One token for each sequence that is decoding. Those whose context is full
   end first, before anything is queued (their callbacks may cancel others). */
static void bn__batch_decodes(bn_batcher *b, int *n) {
    int i;
    for (i = 0; i < b->p.n_slots; i++) {
        const bn__request *r = &b->req[i];
        if (r->active && r->has_last && r->n_prompt + r->n_generated > b->n_ctx)
            bn__request_finish(b, i, BN_STOP_CONTEXT_FULL);
    }
    for (i = 0; i < b->p.n_slots; i++) {
        const bn__request *r = &b->req[i];
        if (r->active && r->has_last) bn__batch_push(b, n, i, r->last, r->n_prompt + r->n_generated - 1, 1);
    }
}

/* Then prompt tokens of joining sequences, oldest first, within the chunk budget. */
static void bn__batch_prefills(bn_batcher *b, int *n) {
    int budget = BN_MIN(b->p.n_batch - *n, b->p.prefill_chunk);
    while (budget > 0) {
        int i, pick = -1, k, j;
        for (i = 0; i < b->p.n_slots; i++) {
            const bn__request *r = &b->req[i];
            int queued = 0;
            if (!r->active || r->n_fed == r->n_prompt) continue;
            for (j = 0; j < *n; j++) queued += b->b_owner[j] == i;
            if (r->n_fed + queued == r->n_prompt) continue;
            if (pick < 0 || r->join_order < b->req[pick].join_order) pick = i;
        }
        if (pick < 0) return;
        k = BN_MIN(budget, b->req[pick].n_prompt - b->req[pick].n_fed);
        for (j = 0; j < k; j++) {
            const bn__request *r = &b->req[pick];
            int pos = r->n_fed + j;
            bn__batch_push(b, n, pick, r->prompt[pos], pos, pos == r->n_prompt - 1);
        }
        budget -= k;
    }
}

/* A request's sampled token: its text, the callback, and whether it ends the request. */
static void bn__request_token(bn_batcher *b, int slot, int32_t token, const float *logits) {
    bn__request *r = &b->req[slot];
    bn_token_event ev;
    bn_stop_reason reason = BN_STOP_NONE;
    int id = r->id, is_eos = !r->p.ignore_eos && bn__is_eos(token, r->out.eos, r->out.n_eos), stop_hit = 0;
    if (r->n_generated == 0) r->t_first = bn_time_s();
    r->last = token;
    r->has_last = 1;
    r->n_generated++;
    if (bn__textout_push(&r->out, token, is_eos, &ev.text, &ev.len, &stop_hit, NULL) != BN_OK) {
        bn__request_finish(b, slot, BN_STOP_ERROR);
        return;
    }
    if (stop_hit) reason = BN_STOP_STRING;
    if (r->p.on_token) {
        ev.id = id;
        ev.token = token;
        ev.index = r->n_generated - 1;
        ev.logits = logits;
        ev.n_vocab = b->n_vocab;
        ev.end_token = is_eos;
        ev.reason = BN_STOP_NONE;
        if (r->p.on_token(r->p.user, &ev) && !reason) reason = BN_STOP_CANCELLED;
        if (!r->active || r->id != id) return; /* the callback cancelled it */
    }
    if (!reason && is_eos) reason = BN_STOP_EOS;
    if (!reason && r->p.max_new_tokens >= 0 && r->n_generated >= r->p.max_new_tokens) reason = BN_STOP_MAX_TOKENS;
    if (reason) bn__request_finish(b, slot, reason);
}

/* The plain greedy draws of a step (bn__sampler_plain_greedy, no grammar),
   over the context's pool: each is a scan of the whole vocabulary, and a
   step of 8 sequences made eight of them one after the other on the calling
   thread while the pool waited (0.53 ms of a 16 ms step at 16 threads).
   token[i] = the argmax of row i's logits, or -1: sample it as usual. */
typedef struct bn__greedy_job {
    bn_batcher *b;
    int n;
    int32_t *token;
} bn__greedy_job;

/* Batch row i wants logits for a request that is still the one it was made for. */
static int bn__batch_row_live(const bn_batcher *b, int i) {
    const bn__request *r = &b->req[b->b_owner[i]];
    return b->b_want[i] && r->active && r->id == b->b_rid[i];
}

static int bn__batch_row_plain_greedy(const bn_batcher *b, int i) {
    const bn_sampler *s = b->req[b->b_owner[i]].sampler;
    return bn__batch_row_live(b, i) && s->gm == NULL && bn__sampler_plain_greedy(s);
}

static void bn__greedy_worker(void *arg, int ith, int nth) {
    bn__greedy_job *j = (bn__greedy_job *)arg;
    int i;
    for (i = ith; i < j->n; i += nth)
        if (j->token[i] == -2) j->token[i] = bn__argmax_logits(bn_get_logits(j->b->ctx, i), j->b->n_vocab);
}

static void bn__batch_greedy(bn_batcher *b, int n) {
    bn__greedy_job job;
    int i, count = 0;
    for (i = 0; i < n; i++) {
        b->b_token[i] = bn__batch_row_plain_greedy(b, i) ? -2 : -1; /* -2: to draw here */
        count += b->b_token[i] == -2;
    }
    if (count < 2) { /* one draw: no region to pay for */
        for (i = 0; i < n; i++) b->b_token[i] = -1;
        return;
    }
    job.b = b;
    job.n = n;
    job.token = b->b_token;
    bn_pool_run(b->ctx->pool, bn__greedy_worker, &job);
}

/* After the forward: account for what went in, sample where logits came out. */
static void bn__batch_collect(bn_batcher *b, int n) {
    int i;
    bn__batch_greedy(b, n);
    for (i = 0; i < n; i++) { /* prompt tokens are now in the cache */
        bn__request *r = &b->req[b->b_owner[i]];
        if (r->active && r->n_fed < r->n_prompt) r->n_fed++;
    }
    for (i = 0; i < n; i++) {
        bn__request *r = &b->req[b->b_owner[i]];
        const float *logits;
        int32_t token;
        if (!bn__batch_row_live(b, i)) continue;
        if (r->p.max_new_tokens >= 0 && r->n_generated >= r->p.max_new_tokens) { /* max_new_tokens 0: none at all */
            bn__request_finish(b, b->b_owner[i], BN_STOP_MAX_TOKENS);
            continue;
        }
        logits = bn_get_logits(b->ctx, i);
        token = b->b_token[i] >= 0 ? bn__sampler_greedy_taken(r->sampler, b->b_token[i])
                                   : bn_sampler_sample(r->sampler, logits);
        if (token < 0) {
            bn__request_finish(b, b->b_owner[i], BN_STOP_GRAMMAR);
            continue;
        }
        bn_sampler_accept(r->sampler, token);
        bn__request_token(b, b->b_owner[i], token, logits);
    }
}

BN_API bn_status bn_batcher_step(bn_batcher *b, int *n_active, bn_error *err) {
    bn_batch batch;
    bn_status st;
    int n = 0;
    bn__batch_decodes(b, &n);
    bn__batch_prefills(b, &n);
    if (n > 0) {
        memset(&batch, 0, sizeof batch);
        batch.n_tokens = n;
        batch.token = b->b_tok;
        batch.pos = b->b_pos;
        batch.seq = b->b_seq;
        batch.want_logits = b->b_want;
        st = bn_forward(b->ctx, &batch, err);
        if (st) return st;
        bn__batch_collect(b, n);
    }
    if (n_active) *n_active = bn_batcher_n_active(b);
    return BN_OK;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_GENERATE_H */
